"""``fraudstream evaluate-augmentation``: does diffusion augmentation help, on simulated data?

Thin glue: simulate transactions, compute the features, run
``fraudstream.models.evaluation.evaluate_augmentation``, print the table, write the JSON and
the report. Progress goes to stderr, the table to stdout.

    fraudstream evaluate-augmentation --quick --json out.json

It runs the whole evaluation once per seed (``--seeds``, 5 by default: its own simulated
data, diffusion fits and classifiers each) and reports means across seeds with a t interval
(``result["seeds"]``, and first in the report), so one lucky split never decides; the rest of
the JSON and the plots are the first seed's, ``result["per_seed"]`` holds every seed's
summary and windows.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from typing import Any

from .options import elapsed_say, write_json

__all__ = ["QUICK", "config_from_args", "register", "run"]

QUICK: dict[str, Any] = {
    "customers": 1000,
    "windows": 2,
    "burn_in_days": 7,
    "diffusion_steps": 400,
    "diffusion_hidden": (128, 128, 128),
}
"""What ``--quick`` changes: a small population, two windows, a short diffusion fit."""

_DEFAULT_CUSTOMERS = 5000
_DEFAULT_SEEDS = 5
_DEFAULT_WINDOWS = 4


def register(subparsers: Any, settings: Any = None) -> None:
    p = subparsers.add_parser(
        "evaluate-augmentation",
        help="utility of diffusion-synthetic frauds vs no rebalancing, class weights, SMOTE",
        description=(
            "Simulate transactions, then train XGBoost per window of the handbook's protocol "
            "(train, label-delay gap, test) with each rebalancing variant and compare AP, card "
            "precision@100, ROC AUC and precision/recall at the review threshold and a daily "
            "alert budget, mean ± std across windows."
        ),
    )
    p.add_argument("--quick", action="store_true",
                   help=f"small run for a smoke test (< 3 min per seed on 2 cores): {QUICK}")
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON here")
    p.add_argument("--report", metavar="DIR", default="reports/augmentation",
                   help="write report.md and PNG plots here (default %(default)s); '' for none")
    p.add_argument("--seed", type=int, default=0,
                   help="first seed of simulation and models (default %(default)s)")
    p.add_argument("--seeds", type=int, default=_DEFAULT_SEEDS,
                   help="how many seeds, from --seed on; each runs the whole evaluation on its "
                   "own simulated data (default %(default)s; the summary's interval needs 2)")
    p.add_argument("--windows", type=int, default=None,
                   help=f"test windows (default {_DEFAULT_WINDOWS}; --quick {QUICK['windows']})")
    p.add_argument("--ratios", default="1,5",
                   help="synthetic:real fraud ratios, comma-separated (default %(default)s)")
    p.add_argument("--device", default="auto", help="diffusion device: auto, cpu, cuda, cuda:1")
    p.add_argument("--days", type=int, default=None,
                   help="days to simulate; the windows sit at the end, the rest is feature "
                   "history (default: 30 days of history + what the windows need)")
    p.add_argument("--customers", type=int, default=None,
                   help=f"simulated customers (default {_DEFAULT_CUSTOMERS}; --quick "
                   f"{QUICK['customers']}); terminals are twice as many and the daily "
                   "compromises scale with them")
    p.add_argument("--diffusion-steps", type=int, default=None,
                   help="diffusion optimiser steps per window (default: ~6 per training fraud, "
                   f"500 to 3000, --quick {QUICK['diffusion_steps']})")
    p.add_argument("--budget", type=float, default=100,
                   help="alert budget: transactions reviewed per day, or a share if < 1 "
                   "(default %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch and XGBoost (default %(default)s: the diffusion "
                   "MLP and these trees are small, and extra threads mostly contend; raise it "
                   "on an idle many-core machine; 0 leaves torch's default)")
    p.set_defaults(handler=lambda args, settings: run(args))


def config_from_args(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(SimulationConfig, EvaluationConfig)`` from parsed flags; ``ValueError`` if invalid."""
    from fraudstream.models.batch import XGBParams
    from fraudstream.models.evaluation import EvaluationConfig

    from ..simulator import SimulationConfig

    quick = bool(args.quick)
    try:
        ratios = tuple(float(r) for r in args.ratios.split(",") if r.strip())
    except ValueError:
        raise ValueError(f"--ratios must be numbers separated by commas, got {args.ratios!r}")
    evaluation = EvaluationConfig(
        n_windows=args.windows or (QUICK["windows"] if quick else _DEFAULT_WINDOWS),
        ratios=ratios,
        alert_budget=args.budget,
        device=args.device,
        seed=args.seed,
        xgb=XGBParams(n_jobs=max(1, args.threads), seed=args.seed),
        diffusion_steps=args.diffusion_steps or (QUICK["diffusion_steps"] if quick else None),
        **({"diffusion_hidden": QUICK["diffusion_hidden"]} if quick else {}),
        **({"burn_in_days": QUICK["burn_in_days"]} if quick else {}),
    )
    if args.days is not None:
        # Windows at the end of the data; whatever is left before them is feature history.
        burn_in = args.days - (evaluation.days_needed() - evaluation.burn_in_days)
        if burn_in < 0:
            raise ValueError(
                f"--days {args.days} is too short: {evaluation.n_windows} windows need "
                f"{evaluation.days_needed() - evaluation.burn_in_days:g} days plus history"
            )
        evaluation = replace(evaluation, burn_in_days=burn_in)
    customers = args.customers or (QUICK["customers"] if quick else _DEFAULT_CUSTOMERS)
    simulation = SimulationConfig.scaled(
        customers,
        n_days=evaluation.days_needed(),
        seed=args.seed,
        label_delay_days=evaluation.delay_days,
    )
    return simulation, evaluation


def run(args: argparse.Namespace) -> int:
    """Run the evaluation for parsed flags; 0 on success, 2 on bad flags."""
    import torch

    from fraudstream.models.evaluation_report import format_seeds_table, format_table, write_report
    from fraudstream.models.evaluation_stats import summarize_seeds
    from fraudstream.models.formats import fmt_mean_std

    t0 = time.perf_counter()
    say = elapsed_say()

    try:
        sim_config, config = config_from_args(args)
    except ValueError as exc:
        print(f"fraudstream evaluate-augmentation: {exc}", file=sys.stderr)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    if args.seeds < 1:
        print("fraudstream evaluate-augmentation: --seeds must be >= 1", file=sys.stderr)
        return 2
    results = []
    for seed in range(args.seed, args.seed + args.seeds):
        say(f"seed {seed} ({seed - args.seed + 1}/{args.seeds})")
        seed_config = replace(config, seed=seed, xgb=replace(config.xgb, seed=seed))
        results.append(_one_seed(replace(sim_config, seed=seed), seed_config, say))
    result = results[0]
    result["seeds"] = summarize_seeds(results)
    result["per_seed"] = [{k: r[k] for k in ("config", "summary", "quality_summary", "per_window",
                                            "simulation", "wall_seconds")} for r in results]
    result["command"] = {"quick": bool(args.quick), "seeds": args.seeds,
                         "total_seconds": time.perf_counter() - t0}

    q, perf = result["quality_summary"], result["performance"]
    print(f"across {args.seeds} seed(s), mean [{result['seeds']['confidence']:.0%} t interval]:")
    print(format_seeds_table(result["seeds"]))
    print()
    print(f"seed {args.seed} alone, mean ± std across its windows:")
    print(format_table(result))
    print()
    n_windows = len(result["per_window"])
    for metric, label in (("average_precision", "AP"), ("card_precision_at_k", "CP")):
        deltas = ", ".join(
            f"{v} {d['mean']:+.3f} ({d['windows_ahead']}/{n_windows})"
            for v in result["variants"][1:]
            for d in [result["summary"][v]["vs_none"][metric]]
            if d["mean"] is not None
        )
        print(f"{label} minus none's, same window (windows ahead): {deltas}")
    print(
        f"synthetic frauds: C2ST AUC {fmt_mean_std(q['c2st_auc'])} (two real samples: "
        f"{fmt_mean_std(q['c2st_reference_auc'])}), DCR share {fmt_mean_std(q['dcr_share'])} "
        f"(~0.05 = no memorisation), quality gates passed in {q['gates_passed_windows']}/"
        f"{n_windows} windows"
    )
    print(
        f"diffusion on {perf['device']} ({perf['device_name']}): fit "
        f"{fmt_mean_std(perf['fit_seconds'])} s, "
        f"{fmt_mean_std(perf['samples_per_second'], 0)} samples/s, peak memory "
        f"{perf['peak_memory_bytes'] / 2**20:,.0f} MiB"
    )

    if args.json:
        say(f"wrote {write_json(args.json, result)}")
    if args.report:
        paths = write_report(result, args.report)
        say(f"wrote {paths['report']} and {len(paths) - 1} plots")
    say("done")
    return 0


def _one_seed(sim_config: Any, config: Any, say: Any) -> dict[str, Any]:
    """Simulate, compute features and evaluate, for one seed."""
    from fraudstream.models.days import DAY_S
    from fraudstream.models.evaluation import evaluate_augmentation
    from fraudstream.models.features import compute_features

    from ..simulator import simulate, summary

    t0 = time.perf_counter()
    say(f"simulating {sim_config.n_days} days of {sim_config.n_customers:,} customers "
        f"and {sim_config.n_terminals:,} terminals (seed {sim_config.seed})")  # fmt: skip
    df = simulate(sim_config)
    t_sim = time.perf_counter() - t0
    say(f"simulated {len(df):,} transactions, {int(df['is_fraud'].sum()):,} frauds; features")
    features = compute_features(df, config.delay_days * DAY_S)
    t_features = time.perf_counter() - t0 - t_sim
    say(f"features ready; evaluating {config.n_windows} windows")
    result = evaluate_augmentation(df, features, config, progress=say)
    result["simulation"] = {
        **{k: v for k, v in asdict(sim_config).items()},
        "summary": summary(df),
        "simulate_seconds": t_sim,
        "features_seconds": t_features,
    }
    return result
