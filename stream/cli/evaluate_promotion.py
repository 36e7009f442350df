"""``fraudstream evaluate-promotion``: does the trainer promote on evidence, not on noise?

Thin glue: simulate a stream, compute its features, run
``fraudstream.models.promotion_study.promotion_study`` with the trainer's own settings
(``FRAUDSTREAM_TRAINER_*``: margin, confidence, synthesis, window), print one line per cycle
and the agreement. Progress goes to stderr.

    fraudstream evaluate-promotion --mix extended --json out.json
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .options import elapsed_say, write_json

__all__ = ["register", "run"]


def register(subparsers: Any, settings: Any = None) -> None:
    p = subparsers.add_parser(
        "evaluate-promotion",
        help="replay trainer cycles; compare each promotion with a 5-seed look at later data",
        description="Simulate a stream and replay the trainer's cycles on it (every --every-days, "
        "the trainer's window and settings); per cycle, retrain the challenger with "
        "--reference-seeds other seeds and score them and the champion on the --horizon-days "
        "after the cycle. A decision agrees when the trainer promoted exactly when the mean "
        "later AP gain is above the promotion margin.")
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON here")
    p.add_argument("--mix", default="handbook", help="scenario mix (default %(default)s)")
    p.add_argument("--customers", type=int, default=1500,
                   help="simulated customers (default %(default)s)")
    p.add_argument("--cycles", type=int, default=10, help="trainer cycles (default %(default)s)")
    p.add_argument("--every-days", type=float, default=3.0,
                   help="event-time days between cycles (default %(default)s)")
    p.add_argument("--horizon-days", type=float, default=7.0,
                   help="later days the reference scores (default %(default)s)")
    p.add_argument("--reference-seeds", type=int, default=5,
                   help="challengers retrained per cycle for the reference (default %(default)s)")
    p.add_argument("--reference-margin", type=float, default=0.005,
                   help="mean later AP gain the reference calls an improvement (default "
                   "%(default)s; the trainer's own margin is FRAUDSTREAM_TRAINER_PROMOTE_MARGIN)")
    p.add_argument("--seed", type=int, default=0, help="simulation and trainer seed")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Any) -> int:
    from fraudstream.models.days import DAY_S
    from fraudstream.models.features import WINDOWS_DAYS, compute_features, feature_names
    from fraudstream.models.promotion_study import (
        PromotionStudyConfig, format_cycles, promotion_study,
    )

    from ..simulator import MIXES, SimulationConfig, simulate
    from ..trainer import refresh_config

    say = elapsed_say()
    if args.mix not in MIXES:
        print(f"fraudstream evaluate-promotion: --mix must be one of {', '.join(MIXES)}",
              file=sys.stderr)
        return 2
    if args.cycles < 2 or args.reference_seeds < 1 or args.every_days <= 0 \
            or args.horizon_days <= 0:
        print("fraudstream evaluate-promotion: need --cycles >= 2, --reference-seeds >= 1 and "
              "positive --every-days and --horizon-days", file=sys.stderr)
        return 2
    started = time.perf_counter()
    settings = settings.model_copy(update={"seed": args.seed})
    refresh = refresh_config(settings)
    study = PromotionStudyConfig(cycles=args.cycles, every_days=args.every_days,
                                 window_days=settings.trainer_window_days,
                                 horizon_days=args.horizon_days,
                                 reference_seeds=args.reference_seeds,
                                 reference_margin=args.reference_margin,
                                 burn_in_days=max(WINDOWS_DAYS) + settings.label_delay_days)
    sim = SimulationConfig.scaled(args.customers, mix=args.mix, seed=args.seed,
                                  n_days=int(study.days_needed()) + 1,
                                  label_delay_days=settings.label_delay_days)
    say(f"simulating {sim.n_days} days of {sim.n_customers:,} customers ({args.mix} mix)")
    df = simulate(sim)
    say(f"{len(df):,} transactions, {int(df['is_fraud'].sum()):,} frauds; features "
        f"({settings.feature_set})")
    features = compute_features(df, settings.label_delay_days * DAY_S,
                                extra=settings.extra_features, feature_set=settings.feature_set)
    names = feature_names(settings.extra_features, settings.feature_set)
    result = promotion_study(features[names].to_numpy(), df["is_fraud"].to_numpy(),
                             df["ts"].to_numpy(), df["card_id"].to_numpy(),
                             df["tx_id"].to_numpy(), names, refresh, study, progress=say)
    result["command"] = {"mix": args.mix, "customers": args.customers, "seed": args.seed,
                         "feature_set": settings.feature_set,
                         "total_seconds": time.perf_counter() - started}
    print(format_cycles(result))
    if args.json:
        say(f"wrote {write_json(args.json, result)}")
    return 0
