"""``fraudstream evaluate-detection``: how well the models catch each scenario mix's frauds.

Thin glue: simulate one stream per scenario mix, run
``fraudstream.models.detection.evaluate_detection`` on it, print a Markdown table, write the
JSON. Progress goes to stderr, the table to stdout.

    fraudstream evaluate-detection --json out.json
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .options import elapsed_say, write_json

__all__ = ["parse_online", "register", "run"]

QUICK = {"customers": 1000, "days": 42}  # 42: one handbook window with its validation window
# 37 days of history (the longest terminal window, 30 days, ends at the 7-day label delay),
# the trainer's 30-day training window, the delay and the 20-day test window. A shorter
# stream trains the batch model on fewer days than the trainer does, on features whose
# windows are still filling (at 50 days: 16 days of labels, AP 0.51 instead of 0.73 on the
# handbook mix), which is not the model production runs. The handbook's experiments (its AP
# 0.687) train months into their stream.
DEFAULT_DAYS = 37 + 30 + 7 + 20


def register(subparsers: Any, settings: Any = None) -> None:
    p = subparsers.add_parser(
        "evaluate-detection",
        help="prequential AP of the online learner and time-split AP of the batch model, "
             "per scenario mix, label mode and feature set",
        description=(
            "Simulate a stream per scenario mix; measure the online learner prequentially "
            "(every transaction scored before its label, labels learned when they would "
            "arrive) in each label mode, and XGBoost trained on the labels known before the "
            "last --test-days; old (handbook) and new (extended) feature sets side by side. "
            "XGBoost is also measured with the Fraud-Detection Handbook's protocol: weekly "
            "windows (7 days' training, 7 days' delay, 7 days' test, cards known to be "
            "compromised removed), its depth, trees and learning rate chosen on a validation "
            "window before each test week, beside the trainer's settings."
        ),
    )
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON here")
    p.add_argument("--mixes", default="handbook,extended",
                   help="scenario mixes, comma-separated (default %(default)s)")
    p.add_argument("--customers", type=int, default=5000,
                   help="simulated customers (default %(default)s; terminals twice as many)")
    p.add_argument("--days", type=int, default=DEFAULT_DAYS,
                   help="days simulated (default %(default)s: the batch model's training days "
                        "then hold the trainer's 30-day window, every transaction with full "
                        "feature windows behind it, as in production)")
    p.add_argument("--test-days", type=float, default=20.0,
                   help="the batch model's test window: the last days (default %(default)s)")
    p.add_argument("--handbook-windows", type=int, default=4, metavar="N",
                   help="handbook-protocol windows: the latest N test weeks the stream holds "
                        "(fewer if it is shorter; it needs 42 days for one, 7 more per "
                        "window); 0 skips them (default %(default)s)")
    p.add_argument("--online", default="binned",
                   help="online learners, comma-separated MODEL[:FRAUD_WEIGHT], e.g. "
                        "binned,logreg:3 (default %(default)s)")
    p.add_argument("--partitions", type=int, default=8,
                   help="partitions of the label stream: in fraud_only mode each has its own "
                        "label watermark (default %(default)s, FRAUDSTREAM_PARTITIONS' default)")
    p.add_argument("--seed", type=int, default=0, help="seeds simulation and models")
    p.add_argument("--quick", action="store_true", help=f"a small run: {QUICK}")
    p.set_defaults(handler=lambda args, settings: run(args))


def parse_online(text: str) -> tuple[Any, ...]:
    """``"binned,logreg:3"`` -> OnlineSpecs; ``ValueError`` for an unknown model or weight."""
    from fraudstream.models.detection import OnlineSpec
    from fraudstream.models.online import MODELS

    specs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        model, _, weight = item.partition(":")
        if model not in MODELS:
            raise ValueError(f"unknown online model {model!r}; known: {', '.join(MODELS)}")
        kwargs: dict[str, Any] = {"model": model}
        if weight:
            kwargs["class_weight_fraud"] = float(weight)
        specs.append(OnlineSpec(item, kwargs))
    if not specs:
        raise ValueError("--online names no learner")
    return tuple(specs)


def run(args: argparse.Namespace) -> int:
    """Run the report for parsed flags; 0 on success, 2 on bad flags."""
    from dataclasses import replace

    from fraudstream.models.batch import XGBParams
    from fraudstream.models.detection import DetectionConfig, evaluate_detection, format_detection
    from fraudstream.models.detection_handbook import HANDBOOK_PROTOCOL

    from ..simulator import MIXES, SimulationConfig, simulate, summary

    t0 = time.perf_counter()
    say = elapsed_say()

    customers = QUICK["customers"] if args.quick else args.customers
    days = QUICK["days"] if args.quick else args.days
    mixes = [m.strip() for m in args.mixes.split(",") if m.strip()]
    try:
        unknown = [m for m in mixes if m not in MIXES]
        if unknown or not mixes:
            raise ValueError(f"--mixes: unknown {unknown}; known: {', '.join(MIXES)}")
        if args.handbook_windows < 0:
            raise ValueError("--handbook-windows must be >= 0")
        handbook = (replace(HANDBOOK_PROTOCOL, n_windows=args.handbook_windows)
                    if args.handbook_windows else None)
        config = DetectionConfig(test_days=args.test_days, online=parse_online(args.online),
                                 partitions=args.partitions, xgb=XGBParams(seed=args.seed),
                                 handbook=handbook, seed=args.seed)
    except ValueError as exc:
        print(f"fraudstream evaluate-detection: {exc}", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}
    for mix in mixes:
        sim = SimulationConfig.scaled(customers, mix=mix, n_days=days, seed=args.seed,
                                      label_delay_days=config.delay_days)
        df = simulate(sim)
        say(f"mix {mix}: {len(df):,} transactions, {int(df['is_fraud'].sum()):,} frauds")
        try:
            results[mix] = evaluate_detection(df, config, progress=say)
        except ValueError as exc:
            print(f"fraudstream evaluate-detection: {exc}", file=sys.stderr)
            return 2
        results[mix]["simulation"] = {"mix": mix, "customers": customers, "days": days,
                                      "seed": args.seed, "summary": summary(df)}
    print(format_detection(results))
    if args.json:
        path = write_json(args.json, {"mixes": results, "seconds": time.perf_counter() - t0})
        say(f"wrote {path}")
    return 0
