"""``fraudstream worker``: one scoring worker; start several to scale out."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Settings
from .options import add_loglevel, env

__all__ = ["register"]


def register(subparsers: Any, settings: Settings) -> None:
    p = subparsers.add_parser("worker", help="run a scoring worker (faust); start several to scale")
    p.add_argument("--passthrough", action="store_true",
                   help="benchmark ceiling: copy transactions to scores without scoring")
    p.add_argument("--role", choices=["score", "label"], default=settings.worker_role,
                   help="score: transactions to scores (and, by default, start this worker's "
                        "label process); label: labels, the join, learning, training examples "
                        f"({env('worker_role')}; see {env('label_process')})")
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    add_loglevel(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..worker import run_worker

    run_worker(settings, passthrough=args.passthrough, loglevel=args.loglevel, role=args.role,
               parent_pid=args.parent_pid)
    return 0
