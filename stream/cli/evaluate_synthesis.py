"""``fraudstream evaluate-synthesis``: frauds-only vs conditional diffusion, and targeting.

Thin glue, like ``evaluate-augmentation``: per seed, simulate transactions, compute the
features and run ``fraudstream.models.synthesis_study.compare_synthesis``; then print one line
per variant (C2ST AUC, DCR share, AP, AP gain over no synthetic rows with a t interval across
seeds, and the ledger's interval over every window). Progress goes to stderr.

    fraudstream evaluate-synthesis --quick --seeds 3 --json out.json
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Any

from .options import elapsed_say, write_json

__all__ = ["QUICK", "register", "run"]

QUICK: dict[str, Any] = {"customers": 1000, "windows": 2, "burn_in_days": 7,
                         "diffusion_hidden": (128, 128, 128), "n_estimators": 150}
"""What ``--quick`` changes: a small population, two windows, a smaller network and forest."""


def register(subparsers: Any, settings: Any = None) -> None:
    """Add ``evaluate-synthesis`` to an ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "evaluate-synthesis",
        help="compare synthetic-fraud generators (frauds-only, conditional) and targeting",
        description="Simulate transactions; per window, add the same number of synthetic frauds "
        "from each generator (and targeted selections) to XGBoost training and compare C2ST AUC, "
        "DCR share and the AP gain over no synthetic rows.")
    p.add_argument("--quick", action="store_true", help=f"small run: {QUICK}")
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON here")
    p.add_argument("--seed", type=int, default=0, help="first seed (default %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="seeds, each its own simulated data "
                   "(default %(default)s)")
    p.add_argument("--windows", type=int, default=None, help="test windows (default 4)")
    p.add_argument("--customers", type=int, default=None, help="simulated customers (5000)")
    p.add_argument("--ratio", type=float, default=1.0,
                   help="synthetic rows per training fraud (default %(default)s)")
    p.add_argument("--guidance", default="0,1,3",
                   help="guidance weights of the conditional model, comma-separated, '' for "
                   "none (default %(default)s)")
    p.add_argument("--targets", default="boundary,clusters",
                   help="targeting of novel, boundary, low, clusters "
                   "(default %(default)s; '' none)")
    p.add_argument("--target-generators", default="frauds_only",
                   help="generators the targets apply to (default %(default)s)")
    p.add_argument("--diffusion-steps", type=int, default=None,
                   help="frauds-only fit steps (default ~6 per fraud, 500 to 3000)")
    p.add_argument("--conditional-steps", type=int, default=None,
                   help="conditional fit steps (default ~6 per row it is fitted on, "
                   "500 to 3000)")
    p.add_argument("--legit-per-fraud", type=int, default=4,
                   help="legitimate rows per fraud in the conditional model (default %(default)s)")
    p.add_argument("--device", default="auto", help="diffusion device: auto, cpu, cuda")
    p.add_argument("--threads", type=int, default=1, help="torch and XGBoost threads")
    p.set_defaults(handler=lambda args, settings=None: run(args))


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def run(args: argparse.Namespace) -> int:
    """Run the study for parsed flags; 0 on success, 2 on bad flags."""
    import torch

    from fraudstream.models.formats import jsonable
    from fraudstream.models.synthesis_study import (
        StudyConfig, format_study_table, summarize_seeds)

    t0 = time.perf_counter()
    say = elapsed_say()
    quick = bool(args.quick)
    try:
        config = StudyConfig(
            n_windows=args.windows or (QUICK["windows"] if quick else 4),
            ratio=args.ratio, guidance=_floats(args.guidance), targets=_names(args.targets),
            target_generators=_names(args.target_generators),
            diffusion_steps=args.diffusion_steps, conditional_steps=args.conditional_steps,
            legit_per_fraud=args.legit_per_fraud, device=args.device,
            n_jobs=max(1, args.threads), seed=args.seed,
            **({k: QUICK[k] for k in ("burn_in_days", "diffusion_hidden", "n_estimators")}
               if quick else {}))
    except ValueError as exc:
        print(f"fraudstream evaluate-synthesis: {exc}", file=sys.stderr)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    customers = args.customers or (QUICK["customers"] if quick else 5000)
    results = []
    for seed in range(args.seed, args.seed + max(1, args.seeds)):
        say(f"seed {seed}")
        results.append(_one_seed(replace(config, seed=seed), customers, say))
    seeds = summarize_seeds(results)
    total = time.perf_counter() - t0
    print(f"{seeds['n_seeds']} seed(s) x {config.n_windows} windows, {customers:,} customers, "
          f"ratio {config.ratio:g}; mean across seeds [{seeds['confidence']:.0%} t interval]; "
          f"{total:.0f} s")
    print(format_study_table(seeds))
    if args.json:
        out = jsonable({"seeds": seeds, "per_seed": results, "total_seconds": total})
        say(f"wrote {write_json(args.json, out)}")
    return 0


def _one_seed(config: Any, customers: int, say: Any) -> dict[str, Any]:
    from fraudstream.models.days import DAY_S
    from fraudstream.models.features import compute_features
    from fraudstream.models.synthesis_study import compare_synthesis

    from ..simulator import SimulationConfig, simulate

    sim = SimulationConfig.scaled(customers, n_days=config.days_needed(), seed=config.seed,
                                  label_delay_days=config.delay_days)
    df = simulate(sim)
    say(f"simulated {len(df):,} transactions, {int(df['is_fraud'].sum()):,} frauds; features")
    features = compute_features(df, config.delay_days * DAY_S)
    return compare_synthesis(df, features, config, progress=say)
