"""``fraudstream trainer``: the background trainer, one process beside the workers."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..config import Settings
from .options import add_loglevel

__all__ = ["register"]


def register(subparsers: Any, settings: Settings) -> None:
    p = subparsers.add_parser("trainer", help="run the background trainer (one process)")
    p.add_argument("--once", action="store_true",
                   help="rebuild the window, run one cycle, exit (status 1 if it failed)")
    add_loglevel(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..trainer import run_trainer

    logging.basicConfig(level=args.loglevel.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_trainer(settings, once=args.once)
