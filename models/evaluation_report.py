"""The augmentation study's report: text tables, ``report.md`` and its PNG plots.

Reads a result of :func:`~.evaluation.evaluate_augmentation` (with ``result["seeds"]`` from
:func:`~.evaluation_stats.summarize_seeds` when several seeds ran) and writes it down:
:func:`format_table` (mean ± std across windows), :func:`format_seeds_table` (t intervals
across seeds), :func:`write_report` (Markdown and plots; matplotlib is imported only there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .formats import fmt_interval, fmt_mean_std, fmt_number
from .ranking import METRICS

__all__ = ["format_seeds_table", "format_table", "write_report"]


def format_table(result: Mapping[str, Any], markdown: bool = False) -> str:
    """Variants as rows, metrics as columns, ``mean ± std`` across windows."""
    config = result["config"]
    header = ["variant"] + [_metric_label(m, config) for m in METRICS]
    rows = [
        [v] + [fmt_mean_std(result["summary"][v][m]) for m in METRICS]
        for v in result["variants"]
    ]
    return _render(header, rows, markdown)


def format_seeds_table(seeds: Mapping[str, Any], markdown: bool = False) -> str:
    """Variants as rows: AP, card precision@k and their difference from ``none``, each as
    ``mean [low, high]`` across seeds."""
    conf = f"{seeds['confidence']:.0%}"
    header = ["variant", f"AP [{conf}]", f"CP@k [{conf}]", f"Δ AP vs none [{conf}]",
              "seeds ahead", f"Δ CP vs none [{conf}]"]
    rows = []
    n = len(seeds["seeds"])
    for v in seeds["variants"]:
        row = seeds["summary"][v]
        d_ap, d_cp = row["vs_none"]["average_precision"], row["vs_none"]["card_precision_at_k"]
        rows.append([v, fmt_interval(row["average_precision"]),
                     fmt_interval(row["card_precision_at_k"]), fmt_interval(d_ap, signed=True),
                     f"{d_ap['seeds_ahead']}/{n}", fmt_interval(d_cp, signed=True)])
    return _render(header, rows, markdown)


def _render(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    """A Markdown table, or plain columns padded to their widest cell."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def _metric_label(metric: str, config: Mapping[str, Any]) -> str:
    budget = config["alert_budget"]
    per_day = f"{budget:g}/day" if budget >= 1 else f"{budget:.1%}/day"
    return {
        "roc_auc": "ROC AUC",
        "average_precision": "AP",
        "card_precision_at_k": f"CP@{config['top_k_cards']}",
        "precision_at_threshold": f"P@{config['threshold']:g}",
        "recall_at_threshold": f"R@{config['threshold']:g}",
        "precision_at_budget": f"P@{per_day}",
        "recall_at_budget": f"R@{per_day}",
    }[metric]


def write_report(result: Mapping[str, Any], directory: str | Path) -> dict[str, Path]:
    """Write ``report.md`` and its PNG plots into ``directory``; returns the paths by name.

    Plots: pooled precision-recall curves per variant; AP and card precision@k per variant
    with their spread; real vs synthetic frauds of the last window projected on the first
    two principal components of the real frauds; per-feature marginals, real vs synthetic.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "pr_curves": out / "pr_curves.png",
        "metrics": out / "metrics.png",
        "projection": out / "projection.png",
        "marginals": out / "marginals.png",
        "report": out / "report.md",
    }
    _plot_pr_curves(plt, result, paths["pr_curves"])
    _plot_metrics(plt, result, paths["metrics"])
    samples = result["samples"]
    real = np.asarray(samples["real"], dtype=np.float64)
    holdout = np.asarray(samples["holdout"], dtype=np.float64)
    synth = np.asarray(samples["synthetic"], dtype=np.float64)
    _plot_projection(plt, real, holdout, synth, paths["projection"])
    _plot_marginals(plt, real, synth, samples["feature_names"], paths["marginals"])
    paths["report"].write_text(_markdown(result), encoding="utf-8")
    return paths


def _plot_pr_curves(plt: Any, result: Mapping[str, Any], path: Path) -> None:
    curves = result["curves"]
    fig, ax = plt.subplots(figsize=(7, 5))
    for variant in result["variants"]:
        ax.plot(
            curves["recall"], curves["precision"][variant],
            label=f"{variant} (AP {curves['pooled_ap'][variant]:.3f})",
            linestyle="--" if variant.startswith("diffusion") else "-",
        )  # fmt: skip
    ax.set(xlabel="recall", ylabel="precision (interpolated)", xlim=(0, 1), ylim=(0, 1.02),
           title=f"Precision-recall, test rows of all {len(result['per_window'])} windows pooled")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_metrics(plt: Any, result: Mapping[str, Any], path: Path) -> None:
    variants = result["variants"]
    shown = ("average_precision", "card_precision_at_k", "recall_at_budget")
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 4))
    for ax, metric in zip(axes, shown):
        stats = [result["summary"][v][metric] for v in variants]
        means = [np.nan if s["mean"] is None else s["mean"] for s in stats]
        stds = [0.0 if s["std"] is None else s["std"] for s in stats]
        ax.bar(range(len(variants)), means, yerr=stds, capsize=3,
               color=["C0" if not v.startswith("diffusion") else "C1" for v in variants])
        for x, s in enumerate(stats):
            vals = [v for v in s["values"] if v is not None]
            ax.plot([x] * len(vals), vals, "k.", markersize=4)
        ax.set_xticks(range(len(variants)), variants, rotation=35, ha="right", fontsize=8)
        ax.set_title(_metric_label(metric, result["config"]) + " (mean ± std, dots: windows)",
                     fontsize=9)  # fmt: skip
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_projection(
    plt: Any, real: np.ndarray, holdout: np.ndarray, synth: np.ndarray, path: Path
) -> None:
    # Standardise by the real frauds (else amounts and counts are the only axes), then PCA.
    mu, sd = real.mean(axis=0), real.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    Z = (real - mu) / sd
    _, s, vt = np.linalg.svd(Z - Z.mean(axis=0), full_matrices=False)
    axes = vt[:2].T
    explained = (s[:2] ** 2) / max((s**2).sum(), 1e-12)
    project = lambda A: ((A - mu) / sd - Z.mean(axis=0)) @ axes  # noqa: E731
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for rows, label, style in (
        (synth, f"synthetic ({len(synth)})", dict(c="C1", marker="x", alpha=0.35, s=12)),
        (real, f"real, diffusion fit set ({len(real)})", dict(c="C0", alpha=0.5, s=12)),
        (holdout, f"real, held out ({len(holdout)})", dict(c="C2", alpha=0.8, s=18)),
    ):
        if len(rows):
            P = project(rows)
            ax.scatter(P[:, 0], P[:, 1], label=label, **style)
    ax.set(xlabel=f"PC1 ({explained[0]:.0%} of real variance)",
           ylabel=f"PC2 ({explained[1] if len(explained) > 1 else 0:.0%})",
           title="Frauds, real vs synthetic: PCA fitted on the real frauds")  # fmt: skip
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_marginals(
    plt: Any, real: np.ndarray, synth: np.ndarray, names: Sequence[str], path: Path
) -> None:
    n_cols = 4
    n_rows = math.ceil(len(names) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.4 * n_cols, 2.5 * n_rows), squeeze=False)
    for j, name in enumerate(names):
        ax = axes[j // n_cols][j % n_cols]
        both = np.concatenate([real[:, j], synth[:, j]])
        values = np.unique(both)
        if len(values) <= 25 and np.allclose(values, np.round(values)):
            bins = np.arange(values.min() - 0.5, values.max() + 1.5)  # one bar per whole value
        else:
            lo, hi = np.percentile(both, [0.5, 99.5])
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
        ax.hist(real[:, j], bins=bins, density=True, alpha=0.5, label="real", color="C0")
        ax.hist(synth[:, j], bins=bins, density=True, histtype="step", lw=1.5,
                label="synthetic", color="C1")  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for j in range(len(names), n_rows * n_cols):
        axes[j // n_cols][j % n_cols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Per-feature marginals of frauds, real (fit set) vs synthetic", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _markdown(result: Mapping[str, Any]) -> str:
    config, data, perf = result["config"], result["data"], result["performance"]
    ratios = ", ".join(f"{r:g}" for r in config["ratios"])
    lines = [
        "# Does diffusion augmentation help? Utility evaluation",
        "",
        f"{data['n_transactions']:,} simulated transactions, {data['n_frauds']:,} frauds "
        f"({data['fraud_rate']:.2%}), {data['first_ts_utc']} .. {data['last_ts_utc']}.",
        "",
        "**Protocol** (Fraud-Detection Handbook, *Validation strategies*): train on "
        f"{config['train_days']:g} days, skip {config['delay_days']:g} days (labels not yet "
        f"known), test on the next {config['test_days']:g} days; {len(result['windows'])} "
        f"windows, each shifted by {config['test_days']:g} days, after {config['burn_in_days']:g} "
        "days of history for the features."
        + (" Cards already known to be compromised are removed from each test day."
           if config["exclude_known_cards"] else ""),
        "",
        f"**Classifier**: XGBoost `{config['xgb']}`, the same for every variant. "
        "**Variants**: `none` (no rebalancing), `class_weight` (scale_pos_weight = legit/fraud), "
        "`smote` (SMOTE to balanced classes, standardised columns), `diffusion_x{r}` (r x the "
        f"training frauds as synthetic frauds from TabularDiffusion, r in {ratios}; "
        f"{perf['fit_steps']} fit steps, hidden {perf['diffusion_params']['hidden']}, "
        f"{perf['sampler']} sampler).",
        "",
        "| window | train | test | train tx | train frauds | test tx | test frauds "
        f"| CP@{config['top_k_cards']} of a perfect ranking |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in result["per_window"]:
        win = w["window"]
        lines.append(
            f"| {win['index']} | {win['train_start_utc'][:10]} .. {win['train_end_utc'][:10]} "
            f"| {win['test_start_utc'][:10]} .. {win['test_end_utc'][:10]} | {w['n_train']:,} "
            f"| {w['n_train_frauds']:,} | {w['n_test']:,} | {w['n_test_frauds']:,} "
            f"| {fmt_number(w['card_precision_at_k_oracle'])} |"
        )
    seeds = result.get("seeds")
    if seeds:
        q = seeds["quality"]
        lines += [
            "",
            f"## Results across {len(seeds['seeds'])} seeds (mean [{seeds['confidence']:.0%} t "
            "interval])",
            "",
            f"Seeds {', '.join(str(s) for s in seeds['seeds'])}: each its own simulated data, "
            f"diffusion fits and classifiers, {seeds['n_windows']} windows in all. The unit is "
            "one seed's mean over its windows; the interval is Student's t across seeds. A "
            "difference from `none` whose interval holds 0 is not a finding.",
            "",
            format_seeds_table(seeds, markdown=True),
            "",
            f"Synthetic frauds across seeds: C2ST AUC {fmt_interval(q['c2st_auc'])}, DCR share "
            f"{fmt_interval(q['dcr_share'])}; quality gates passed in {q['gates_passed_windows']}/"
            f"{seeds['n_windows']} windows.",
            "",
            f"The rest of this report is seed {result['config']['seed']}'s.",
        ]
    lines += [
        "",
        "## Results (mean ± std across windows)",
        "",
        format_table(result, markdown=True),
        "",
        "Judge on AP and card precision@k: rebalancing typically lifts ROC AUC and recall at a "
        "fixed threshold while costing precision (the handbook's warning).",
        "",
        "Paired with `none` in the same window (difference, mean ± std; windows ahead):",
        "",
        "| variant | Δ AP | windows ahead | Δ CP | windows ahead |",
        "|---|---|---|---|---|",
    ]
    n_win = len(result["per_window"])
    for v in result["variants"][1:]:
        d = result["summary"][v]["vs_none"]
        ap, cp = d["average_precision"], d["card_precision_at_k"]
        lines.append(
            f"| {v} | {fmt_mean_std(ap, signed=True)} | {ap['windows_ahead']}/{n_win} "
            f"| {fmt_mean_std(cp, signed=True)} | {cp['windows_ahead']}/{n_win} |"
        )
    lines += [
        "",
        "![precision-recall curves](pr_curves.png)",
        "",
        "![metrics per variant](metrics.png)",
        "",
        "## Quality of the synthetic frauds",
        "",
        f"Per window, the diffusion model is fitted on {1 - config['quality_holdout']:.0%} of "
        "the training frauds; the rest are real frauds it never saw. C2ST: AUC of a classifier "
        "telling held-out real frauds from synthetic ones (0.5 ideal; the reference is two "
        "real samples). DCR share: synthetic rows closer to a training fraud than the 5% "
        "closest held-out rows (about 0.05 means no memorisation).",
        "",
        "| window | C2ST AUC | C2ST reference | C2ST vs fit set | DCR share | DCR median ratio "
        "| KS mean | corr distance | gates |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in result["per_window"]:
        q = w["quality"]
        lines.append(
            f"| {w['window']['index']} | {fmt_number(q['c2st_auc'])} "
            f"| {fmt_number(q['c2st_reference_auc'])} "
            f"| {fmt_number(q['c2st_train_auc'])} | {fmt_number(q['dcr_share'])} "
            f"| {fmt_number(q['dcr_median_ratio'])} | {fmt_number(q['ks_mean'])} "
            f"| {fmt_number(q['corr_distance'])} | {'pass' if q['gates_passed'] else 'FAIL'} |"
        )
    qs = result["quality_summary"]
    lines += [
        f"| mean | {fmt_mean_std(qs['c2st_auc'])} | {fmt_mean_std(qs['c2st_reference_auc'])} "
        f"| {fmt_mean_std(qs['c2st_train_auc'])} | {fmt_mean_std(qs['dcr_share'])} "
        f"| {fmt_mean_std(qs['dcr_median_ratio'])} "
        f"| {fmt_mean_std(qs['ks_mean'])} | {fmt_mean_std(qs['corr_distance'])} "
        f"| {qs['gates_passed_windows']}/{n_win} |",
        "",
        f"Plots from window {result['samples']['window']}:",
        "",
        "![real vs synthetic frauds, PCA](projection.png)",
        "",
        "![per-feature marginals](marginals.png)",
        "",
        "## Performance",
        "",
        f"- device: {perf['device']} ({perf['device_name']}), torch threads "
        f"{perf['torch_threads']}",
        f"- diffusion fit: {fmt_mean_std(perf['fit_seconds'])} s per window "
        f"({perf['fit_steps']} steps)",
        f"- sampling ({perf['sampler']}): {fmt_mean_std(perf['samples_per_second'])} samples/s",
        f"- peak memory: {perf['peak_memory_bytes'] / 2**20:,.0f} MiB ({perf['peak_memory_kind']})",
        f"- evaluation wall time: {result['wall_seconds']:.0f} s",
        "",
        "## Metrics",
        "",
    ]
    lines += [f"- `{k}`: {v}" for k, v in result["metrics"].items()]
    return "\n".join(lines) + "\n"
