"""``fraudstream worker``: one scoring worker; start several to scale out."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Settings
from .options import add_loglevel

__all__ = ["register"]


def register(subparsers: Any, settings: Settings) -> None:
    p = subparsers.add_parser("worker", help="run a scoring worker (faust); start several to scale")
    p.add_argument("--passthrough", action="store_true",
                   help="benchmark ceiling: copy transactions to scores without scoring")
    add_loglevel(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..worker import run_worker

    run_worker(settings, passthrough=args.passthrough, loglevel=args.loglevel)
    return 0
