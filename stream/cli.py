"""The ``fraudstream`` command line. Settings are read once here and passed down.

Flags default from the settings object and name the environment variable that sets them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .config import ConfigError, Settings, load_settings

__all__ = ["main", "build_parser"]

Handler = Callable[[argparse.Namespace, Settings], int]


def _env(field: str) -> str:
    return f"env FRAUDSTREAM_{field.upper()}"


# --- kafka ------------------------------------------------------------------------------
def _broker(args: argparse.Namespace, settings: Settings):
    from .kafka_local import LocalBroker

    return LocalBroker(
        data_dir=Path(args.data_dir or settings.kafka_data_dir),
        kafka_home=settings.kafka_home,
        port=args.port,
        secure=True if getattr(args, "secure", False) else None,
    )


def cmd_kafka(args: argparse.Namespace, settings: Settings) -> int:
    from .kafka_local import BrokerError, ensure_jars

    try:
        if args.action == "fetch":
            libs = ensure_jars(settings.kafka_home)
            print(f"kafka jars ready in {libs}")
            return 0
        broker = _broker(args, settings)
        if args.action == "start":
            status = broker.start(progress=lambda m: print(m, file=sys.stderr))
            print(status.describe())
            if broker.secure:
                from .kafka_local import ROLES, role_acls

                broker.grant([a for role in ROLES for a in role_acls(settings, role)])
                files = broker.secure_files
                print(f"SASL_SSL (SCRAM-SHA-512), CA {files.cafile}; ACLs granted to "
                      f"{', '.join(ROLES)} for app id {settings.app_id!r} (docs/security.md)")
                print("point a client at it with one principal's settings (files are 0600):")
                for user in ("admin", *ROLES):
                    print(f"  set -a; . {files.env_file(user)}; set +a")
            else:
                print(f"export FRAUDSTREAM_BROKER_URL=kafka://{status.bootstrap}")
        elif args.action == "stop":
            print("kafka stopped" if broker.stop() else "kafka was not running")
        else:
            status = broker.status()
            print(status.describe())
            return 0 if status.running else 3
    except BrokerError as exc:
        print(f"fraudstream kafka {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


# --- topics -----------------------------------------------------------------------------
def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from .topics import create_topics, topic_specs

    if args.action == "create":
        for name, state in create_topics(settings).items():
            print(f"{name:24s} {state}")
    else:
        for spec in topic_specs(settings):
            print(f"{spec.name:24s} partitions={spec.partitions} {spec.config}")
    return 0


# --- simulate ---------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from . import simulator as sim

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


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from .worker import run_worker

    run_worker(settings, passthrough=args.passthrough, loglevel=args.loglevel)
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    import json

    if args.recovery:
        from .recovery_bench import run_recovery_bench, table

        histories = tuple(int(x) for x in args.histories.split(","))
        result = run_recovery_bench(settings, histories=histories)
        text = json.dumps(result, indent=2)
        print(text)
        print(table(result))
        if args.json:
            Path(args.json).write_text(text + "\n")
        return 0

    from .bench import run_bench, table

    rates = tuple(float(x) for x in args.rates.split(","))
    result = run_bench(settings, n_tx=args.transactions, rates=rates, labels=args.labels,
                       latency_seconds=args.latency_seconds, own_broker=not args.use_broker,
                       only=args.only)
    text = json.dumps(result, indent=2)
    print(text)
    print(table(result))
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


def cmd_soak(args: argparse.Namespace, settings: Settings) -> int:
    from .soak import dumps, run_soak

    result = run_soak(settings, minutes=args.minutes, rate=args.rate, labels=args.labels,
                      every_s=args.every)
    if args.json:
        Path(args.json).write_text(dumps(result) + "\n")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from .demo import run_demo

    return run_demo(settings, minutes=args.minutes, days=args.days, customers=args.customers,
                    keep=args.keep)


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraudstream",
        description="Streaming fraud detection on Kafka with diffusion-augmented retraining.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="run the local single-node Kafka broker (KRaft)")
    kafka.add_argument("action", choices=["start", "stop", "status", "fetch"])
    kafka.add_argument("--port", type=int, default=settings.kafka_port,
                       help=f"listener port (default %(default)s, {_env('kafka_port')})")
    kafka.add_argument("--data-dir", default=str(settings.kafka_data_dir),
                       help=f"KRaft data dir (default %(default)s, {_env('kafka_data_dir')})")
    kafka.add_argument("--secure", action="store_true",
                       help="start: SASL_SSL (SCRAM-SHA-512) with a CA, certificate and passwords "
                            "made in the data dir, and ACLs (docs/security.md); a data dir keeps "
                            "the mode it was first started with")
    kafka.set_defaults(handler=cmd_kafka)

    topics = sub.add_parser("topics", help="create or list the contract's topics")
    topics.add_argument("action", choices=["create", "list"])
    topics.set_defaults(handler=cmd_topics)

    simulate = sub.add_parser("simulate", help="generate card transactions (handbook simulator)")
    simulate.add_argument("--days", type=int, default=30)
    simulate.add_argument("--customers", type=int, default=5000)
    simulate.add_argument("--terminals", type=int, default=10000)
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--label-delay-days", type=float, default=settings.label_delay_days,
                          help=f"default %(default)s, {_env('label_delay_days')}")
    simulate.add_argument("--labels", choices=["all", "fraud_only"], default="all",
                          help="emit a label for every transaction, or only for frauds")
    simulate.add_argument("--out", help="write a .parquet or .csv file")
    simulate.add_argument("--to-kafka", action="store_true",
                          help=f"produce to Kafka at {settings.broker_url} ({_env('broker_url')})")
    simulate.add_argument("--speed", type=float, default=None,
                          help="simulated seconds per wall second (default: as fast as possible)")
    simulate.add_argument("--rate", type=float, default=None,
                          help="at most this many transactions per wall second")
    simulate.set_defaults(handler=cmd_simulate)

    worker = sub.add_parser("worker", help="run a scoring worker (faust); start several to scale")
    worker.add_argument("--passthrough", action="store_true",
                        help="benchmark ceiling: copy transactions to scores without scoring")
    worker.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    worker.set_defaults(handler=cmd_worker)

    bench = sub.add_parser("bench", help="passthrough vs pipeline throughput, latency at fixed load")
    bench.add_argument("--json", help="also write the result here")
    bench.add_argument("--transactions", type=int, default=200_000)
    bench.add_argument("--rates", default="500,1000,2000",
                       help="offered loads for the latency runs, tx/s, comma-separated")
    bench.add_argument("--labels", choices=("all", "fraud_only", "none"), default="all",
                       help="the label stream beside the transactions (default: every one)")
    bench.add_argument("--latency-seconds", type=float, default=30.0)
    bench.add_argument("--only", choices=("throughput", "latency"),
                       help="run one of the two measurements")
    bench.add_argument("--use-broker", action="store_true",
                       help=f"use the broker at {settings.broker_url} instead of starting a fresh one")
    bench.add_argument("--recovery", action="store_true",
                       help="instead: restart time of a worker against history length "
                            "(SIGTERM, SIGKILL, new host), on a broker of its own")
    bench.add_argument("--histories", default="100000,300000",
                       help="--recovery: history lengths in transactions, comma separated")
    bench.set_defaults(handler=cmd_bench)
    soak = sub.add_parser("soak", help="run worker + trainer at a fixed rate for N minutes; "
                                       "print memory, lag and state sizes over time")
    soak.add_argument("--minutes", type=float, default=30.0)
    soak.add_argument("--rate", type=float, default=500.0, help="transactions per second")
    soak.add_argument("--labels", choices=("all", "fraud_only", "none"), default="all")
    soak.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    soak.add_argument("--json", help="also write every sample here")
    soak.set_defaults(handler=cmd_soak)

    demo = sub.add_parser("demo", help="local broker + worker + simulator, with a live summary")
    demo.add_argument("--minutes", type=float, default=4.0, help="wall-clock length (default 4)")
    demo.add_argument("--days", type=int, default=35, help="simulated days to stream")
    demo.add_argument("--customers", type=int, default=1000)
    demo.add_argument("--keep", action="store_true", help="leave the broker running afterwards")
    demo.set_defaults(handler=cmd_demo)

    from . import detection_cli, dlq, evaluate_cli, models_cli

    evaluate_cli.add_parser(sub)
    detection_cli.add_parser(sub)
    models_cli.add_parsers(sub, settings)
    dlq.add_parser(sub, settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    args = build_parser(settings).parse_args(argv)
    from kafka.errors import KafkaError

    try:
        return int(args.handler(args, settings) or 0)
    except KafkaError as exc:
        print(
            f"fraudstream {args.command}: Kafka at {settings.broker_url} failed: {exc}\n"
            "  is a broker running there? (`fraudstream kafka start`, or set FRAUDSTREAM_BROKER_URL)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
