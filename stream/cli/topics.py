"""``fraudstream topics create|list``: the contract's topics (creating them is idempotent)."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Settings

__all__ = ["register"]


def register(subparsers: Any, settings: Settings) -> None:
    p = subparsers.add_parser("topics", help="create or list the contract's topics")
    p.add_argument("action", choices=["create", "list"])
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..topics import create_topics, topic_specs

    if args.action == "create":
        for name, state in create_topics(settings).items():
            print(f"{name:24s} {state}")
    else:
        for spec in topic_specs(settings):
            print(f"{spec.name:24s} partitions={spec.partitions} {spec.config}")
    return 0
