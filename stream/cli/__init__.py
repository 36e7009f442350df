"""The ``fraudstream`` command line. Settings are read once here and passed down.

One module per subcommand, each with ``register(subparsers, settings)``: it adds its parser,
whose flags default from the settings and name the environment variable that sets them, and
sets ``handler(args, settings) -> exit status``. The work itself is done outside this
package (the worker, the trainer, the benchmarks, the DLQ replay...); a handler imports it
when it runs, so ``fraudstream --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from ..config import ConfigError, Settings, load_settings
from . import (
    bench, demo, dlq, evaluate_augmentation, evaluate_detection, evaluate_promotion,
    evaluate_synthesis, kafka, models, retrain, simulate, soak, topics, trainer, worker,
)

__all__ = ["COMMANDS", "build_parser", "main"]

#: The subcommand modules, in the order ``fraudstream --help`` lists them.
COMMANDS = (kafka, topics, simulate, worker, bench, soak, demo, evaluate_augmentation,
            evaluate_synthesis, evaluate_detection, evaluate_promotion, models, retrain, trainer,
            dlq)


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraudstream",
        description="Streaming fraud detection on Kafka with diffusion-augmented retraining.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers, settings)
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
