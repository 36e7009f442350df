"""``fraudstream retrain``: ask the running trainer for a cycle now (on the control topic)."""

from __future__ import annotations

import argparse
from typing import Any

from ..announce import request_retrain
from ..config import Settings

__all__ = ["register"]


def register(subparsers: Any, settings: Settings) -> None:
    p = subparsers.add_parser("retrain", help="ask the running trainer for a cycle now")
    p.add_argument("--reason", default="requested from the command line")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    request_id = request_retrain(settings, args.reason)
    print(f"retrain requested (id {request_id}) on {settings.topics.control}; the trainer logs "
          "the cycle and counts it in fraudstream_trainer_cycles_total")
    return 0
