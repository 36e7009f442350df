"""``fraudstream simulate``: card transactions from the handbook simulator, to a file or Kafka."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..config import Settings
from .options import env

__all__ = ["register"]


def register(subparsers: Any, settings: Settings) -> None:
    p = subparsers.add_parser("simulate", help="generate card transactions (handbook simulator)")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--terminals", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label-delay-days", type=float, default=settings.label_delay_days,
                   help=f"default %(default)s, {env('label_delay_days')}")
    p.add_argument("--labels", choices=["all", "fraud_only"], default="all",
                   help="emit a label for every transaction, or only for frauds")
    p.add_argument("--out", help="write a .parquet or .csv file")
    p.add_argument("--to-kafka", action="store_true",
                   help=f"produce to Kafka at {settings.broker_url} ({env('broker_url')})")
    p.add_argument("--speed", type=float, default=None,
                   help="simulated seconds per wall second (default: as fast as possible)")
    p.add_argument("--rate", type=float, default=None,
                   help="at most this many transactions per wall second")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from .. import simulator as sim

    config = sim.SimulationConfig(
        n_customers=args.customers,
        n_terminals=args.terminals,
        n_days=args.days,
        seed=args.seed,
        label_delay_days=args.label_delay_days,
    )
    df = sim.simulate(config)
    print(sim.summary(df))
    if args.out:
        sim.write_file(df, Path(args.out))
        print(f"wrote {len(df):,} rows to {args.out}")
    if args.to_kafka:
        topics = {"transaction": settings.topics.transactions, "label": settings.topics.labels}
        counts = sim.produce_to_kafka(
            sim.events(df, config.label_delay_days, labels=args.labels),
            bootstrap_servers=settings.bootstrap_servers,
            topics=topics,
            speed=args.speed,
            rate=args.rate,
            security_kwargs=settings.kafka_python_security(),
            progress=lambda c: print(f"  produced {c}", file=sys.stderr),
        )
        print(
            f"produced {counts['transactions']:,} transactions to '{topics['transaction']}' "
            f"and {counts['labels']:,} labels to '{topics['label']}' at {settings.broker_url}"
        )
    if not args.out and not args.to_kafka:
        print("(nothing written: pass --out FILE and/or --to-kafka)")
    return 0
