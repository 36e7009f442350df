"""``fraudstream demo``: a local broker, a worker, a trainer and the simulator, with a live
summary."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Settings

__all__ = ["register"]


def register(subparsers: Any, settings: Settings) -> None:
    p = subparsers.add_parser("demo", help="local broker + worker + simulator, with a live summary")
    p.add_argument("--minutes", type=float, default=4.0, help="wall-clock length (default 4)")
    p.add_argument("--days", type=int, default=35, help="simulated days to stream")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--mix", default="handbook", choices=("handbook", "extended"),
                   help="the simulator's scenario mix (default %(default)s; extended adds card "
                        "testing and account takeover)")
    p.add_argument("--keep", action="store_true", help="leave the broker running afterwards")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..demo import run_demo

    return run_demo(settings, minutes=args.minutes, days=args.days, customers=args.customers,
                    mix=args.mix, keep=args.keep)
