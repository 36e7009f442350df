"""``fraudstream soak``: worker + trainer at a fixed rate for N minutes, sampled over time."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config import Settings

__all__ = ["register"]


def register(subparsers: Any, settings: Settings) -> None:
    p = subparsers.add_parser("soak", help="run worker + trainer at a fixed rate for N minutes; "
                                           "print memory, lag and state sizes over time")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=500.0, help="transactions per second")
    p.add_argument("--labels", choices=("all", "fraud_only", "none"), default="all")
    p.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    p.add_argument("--json", help="also write every sample here")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..soak import dumps, run_soak

    result = run_soak(settings, minutes=args.minutes, rate=args.rate, labels=args.labels,
                      every_s=args.every)
    if args.json:
        Path(args.json).write_text(dumps(result) + "\n")
    return 0
