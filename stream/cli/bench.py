"""``fraudstream bench``: passthrough vs pipeline throughput and latency at fixed loads, or
(``--recovery``) a worker's restart time against history length."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Settings
from .options import env, print_result

__all__ = ["register"]


def register(subparsers: Any, settings: Settings) -> None:
    p = subparsers.add_parser("bench", help="passthrough vs pipeline throughput, latency at fixed load")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--transactions", type=int, default=200_000)
    p.add_argument("--rates", default="500,1000,2000",
                   help="offered loads for the latency runs, tx/s, comma-separated")
    p.add_argument("--labels", choices=("all", "fraud_only", "none"), default="all",
                   help="the label stream beside the transactions (default: every one)")
    p.add_argument("--label-process", choices=("child", "inline"), default=None,
                   help="where the pipeline worker's label path runs (default: "
                        f"{settings.label_process}, {env('label_process')})")
    p.add_argument("--latency-seconds", type=float, default=30.0)
    p.add_argument("--arrivals", choices=("poisson", "steady", "pv"), default="poisson",
                   help="how the latency runs' load arrives: poisson (default; pace -p, as from "
                        "many independent terminals), steady (evenly spaced), or pv (pv -L: "
                        "0.1 s of records at once)")
    p.add_argument("--warmup-seconds", type=_not_negative, default=None,
                   help="load at the first rate before the measured ones, not measured "
                        "(default 5)")
    p.add_argument("--load-streams", type=_at_least_one, default=None,
                   help="paced streams per topic in the latency runs, split by card "
                        "(default 1; with --arrivals pv more streams offer smaller bursts but "
                        "their pv processes take CPU from the worker)")
    p.add_argument("--only", choices=("throughput", "latency"),
                   help="run one of the two measurements")
    p.add_argument("--use-broker", action="store_true",
                   help=f"use the broker at {settings.broker_url} instead of starting a fresh one")
    p.add_argument("--recovery", action="store_true",
                   help="instead: restart time of a worker against history length "
                        "(SIGTERM, SIGKILL, new host), on a broker of its own")
    p.add_argument("--histories", default="100000,300000",
                   help="--recovery: history lengths in transactions, comma separated")
    p.set_defaults(handler=run)


def _at_least_one(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def _not_negative(text: str) -> float:
    x = float(text)
    if not x >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return x


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.recovery:
        from ..recovery_bench import run_recovery_bench, table

        histories = tuple(int(x) for x in args.histories.split(","))
        print_result(run_recovery_bench(settings, histories=histories), table, args.json)
        return 0

    from ..bench import DEFAULT_LOAD_STREAMS, DEFAULT_WARMUP_S, run_bench, table

    rates = tuple(float(x) for x in args.rates.split(","))
    if args.label_process:
        settings = settings.model_copy(update={"label_process": args.label_process})
    result = run_bench(settings, n_tx=args.transactions, rates=rates, labels=args.labels,
                       latency_seconds=args.latency_seconds, own_broker=not args.use_broker,
                       only=args.only, load_streams=(DEFAULT_LOAD_STREAMS if args.load_streams
                                                     is None else args.load_streams),
                       arrivals=args.arrivals,
                       warmup_s=(DEFAULT_WARMUP_S if args.warmup_seconds is None
                                 else args.warmup_seconds))
    print_result(result, table, args.json)
    return 0
