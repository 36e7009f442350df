"""``fraudstream dlq replay``: the flags of the dead-letter replay (:mod:`..dlq`)."""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from .. import dlq
from ..config import Settings
from ..contract import parse_ts
from ..dlq import ReplayError, ReplayRange, replay

__all__ = ["parse_time", "register"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(subparsers: Any, settings: Settings) -> None:
    parent = subparsers.add_parser("dlq", help="dead-letter topics: replay after a fix")
    actions = parent.add_subparsers(dest="dlq_action", required=True)
    p = actions.add_parser(
        "replay", help="re-validate dead letters and re-publish the ones now valid",
        description=dlq.__doc__.split("\n\n", 1)[1].split("\n    fraudstream")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be re-published and what still fails; produce and commit nothing")
    p.add_argument("--source", choices=["transactions", "labels", "all"], default="transactions",
                   help=f"which DLQ: {settings.topics.transactions_dlq} (default), "
                        f"{settings.topics.labels_dlq}, or both")
    p.add_argument("--group", help=f"consumer group remembering what was replayed "
                                   f"(default {settings.app_id}-dlq-replay, from FRAUDSTREAM_APP_ID)")
    p.add_argument("--from-beginning", action="store_true",
                   help="ignore the group's position: re-read every dead letter kept")
    p.add_argument("--since", type=parse_time, metavar="TIME",
                   help="dead-lettered at or after TIME (RFC 3339, epoch seconds, or 30m/2h/1d ago)")
    p.add_argument("--until", type=parse_time, metavar="TIME", help="dead-lettered before TIME")
    p.add_argument("--from-offset", type=int, metavar="N", help="start at this DLQ offset")
    p.add_argument("--to-offset", type=int, metavar="N", help="stop before this DLQ offset")
    p.add_argument("--partition", type=int, action="append", metavar="P",
                   help="only this DLQ partition (repeat for more)")
    p.add_argument("--rekey", action="store_true",
                   help="re-key letters whose key is not their card_id by card_id")
    p.add_argument("--summary-only", action="store_true", help="print the counts, not each letter")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    sources = ["transactions", "labels"] if args.source == "all" else [args.source]
    rng = ReplayRange(from_beginning=args.from_beginning, since=args.since, until=args.until,
                      from_offset=args.from_offset, to_offset=args.to_offset,
                      partitions=tuple(args.partition or ()))
    group = args.group or f"{settings.app_id}-dlq-replay"
    mode = "DRY RUN: nothing is produced or committed" if args.dry_run else "re-publishing"
    print(f"dlq replay ({mode}); sources {', '.join(sources)}; group {group}; "
          f"max message bytes {settings.max_message_bytes}", file=sys.stderr)
    try:
        report = replay(settings, sources, rng, dry_run=args.dry_run, group=group, rekey=args.rekey,
                        progress=lambda m: print(m, file=sys.stderr), list_each=not args.summary_only)
    except ReplayError as exc:
        print(f"fraudstream dlq replay: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def parse_time(text: str, now: float | None = None) -> float:
    """Epoch seconds from RFC 3339, epoch seconds, or a duration ago (``30m``, ``2h``, ``1d``).

    >>> parse_time("2h", now=10_000.0)
    2800.0
    >>> parse_time("2026-01-01T00:00:00Z")
    1767225600.0
    """
    m = _DURATION.match(text.strip())
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        return parse_ts(float(text) if re.fullmatch(r"\d+(\.\d+)?", text.strip()) else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; or a duration ago such as 30m, 2h, 1d") from None
