"""Which synthetic frauds earn their place? Generators and targeting compared by numbers.

The protocol and metrics are those of :mod:`.evaluation` (the handbook's train / label-delay /
test windows, known cards removed from the test days). In each window, with the same
training rows:

``none``                        XGBoost on the real rows only: the baseline of every gain.
``frauds_only``                 + ``ratio`` x (training frauds) rows of a ``TabularDiffusion``
                                fitted on the training frauds (the trainer's default).
``conditional_w{w}``            + as many rows of a ``ConditionalDiffusion`` fitted on the
                                training frauds and ``legit_per_fraud`` legitimate training
                                rows each, sampled as frauds with guidance weight ``w`` (one
                                model per window serves every ``w``).
``{generator}+{target}``        the generator samples ``oversample`` x as many candidates and
                                :mod:`.targeting` keeps ``n``: ``novel`` (in sampling order, no
                                near-copy of a training fraud), ``boundary`` / ``low`` (scored
                                by ``none``'s model, the stand-in for the champion), ``clusters``.

Untargeted variants take the first ``n`` candidates (the sampler's order is random), so a
targeted set and its untargeted one come from the same draw. Each variant's synthetic rows get
a quality report (C2ST AUC against real frauds the generators never saw: a share
``quality_holdout`` of the training frauds kept from every fit; DCR share), and its AP gain
over ``none`` on the test window is measured as the trainer's ledger measures it: a paired,
stratified bootstrap (``models/paired.py``), summarised across windows by
:func:`.ledger.summarize`.

Pure: DataFrames in, a JSON-able dict out; :func:`summarize_seeds` pools several runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from .augmentation import default_steps, feature_kinds, legit_sample, synthesize_frauds
from .batch import XGBoostModel, XGBParams
from .days import DAY_S
from .evaluation_stats import t_interval
from .evaluation_windows import WindowProtocol, protocol_windows, split_window
from .formats import fmt_interval, jsonable
from .ledger import summarize as ledger_summary
from .paired import paired_ap_gain
from .quality import holdout_split, quality_report
from .ranking import score_metrics
from .targeting import select

__all__ = ["StudyConfig", "compare_synthesis", "format_study_table", "summarize_seeds",
           "study_variants"]

Progress = Callable[[str], None]
_TARGETS = ("novel", "boundary", "low", "clusters")


@dataclass(frozen=True)
class StudyConfig(WindowProtocol):
    """Every setting of :func:`compare_synthesis`; stored in its result.

    Protocol as ``EvaluationConfig``. ``ratio``: synthetic rows per training fraud, the same
    for every variant. ``guidance``: the conditional model's guidance weights (empty: no
    conditional model). ``targets`` (of ``boundary``, ``low``, ``clusters``) are applied to
    ``target_generators`` (``frauds_only`` and/or ``conditional_w{w}`` names), each from
    ``oversample`` x ``n`` candidates. ``diffusion_steps`` / ``conditional_steps``: ``None`` is
    ``default_steps`` of the rows each model is fitted on.
    """

    ratio: float = 1.0
    guidance: tuple[float, ...] = (0.0, 1.0, 3.0)
    p_uncond: float = 0.1
    legit_per_fraud: int = 4
    targets: tuple[str, ...] = ("boundary", "clusters")
    target_generators: tuple[str, ...] = ("frauds_only",)
    oversample: int = 3
    n_clusters: int = 8
    diffusion_steps: int | None = None
    conditional_steps: int | None = None
    diffusion_hidden: tuple[int, ...] = (256, 256, 256)
    quality_holdout: float = 0.2
    threshold: float = 0.5
    top_k_cards: int = 100
    alert_budget: float = 100
    n_estimators: int = 300
    max_depth: int = 5
    bootstrap_resamples: int = 500
    confidence: float = 0.9
    n_jobs: int = 1
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.ratio > 0 or self.oversample < 1:
            raise ValueError("ratio must be > 0 and oversample >= 1")
        if any(t not in _TARGETS for t in self.targets):
            raise ValueError(f"targets must be among {_TARGETS}, got {self.targets}")
        generators = study_variants(self)[1:]
        if any(g not in generators for g in self.target_generators):
            raise ValueError(f"target_generators must be among {generators}")


def _generators(config: StudyConfig) -> list[str]:
    return ["frauds_only"] + [f"conditional_w{float(w):g}" for w in config.guidance]


def study_variants(config: StudyConfig) -> list[str]:
    """``none``, every generator, then every targeted generator, in that order.

    >>> study_variants(StudyConfig(guidance=(1,), targets=("clusters",)))
    ['none', 'frauds_only', 'conditional_w1', 'frauds_only+clusters']
    """
    generators = _generators(config)
    targeted = [f"{g}+{t}" for g in generators if g in config.target_generators
                for t in config.targets] if config.targets else []
    return ["none", *generators, *targeted]


def compare_synthesis(transactions: pd.DataFrame, features: pd.DataFrame,
                      config: StudyConfig = StudyConfig(),
                      progress: Progress | None = None) -> dict[str, Any]:
    """Run every window and variant; see the module docstring. ``transactions`` needs ``ts``,
    ``card_id``, ``is_fraud``; ``features`` is row-aligned (``tx_id`` plus feature columns)."""
    say = progress or (lambda message: None)
    t_start = time.perf_counter()
    names = [c for c in features.columns if c != "tx_id"]
    X = features[names].to_numpy(dtype=np.float64)
    y = transactions["is_fraud"].to_numpy(dtype=bool)
    ts = transactions["ts"].to_numpy(dtype=np.float64)
    card = transactions["card_id"].to_numpy()
    kinds = feature_kinds(names)
    variants = study_variants(config)
    start = math.floor(ts.min() / DAY_S) * DAY_S
    windows = protocol_windows(start, config.n_windows, train_days=config.train_days,
                               delay_days=config.delay_days, test_days=config.test_days,
                               burn_in_days=config.burn_in_days)
    if ts.max() < windows[-1].test_end - DAY_S:
        raise ValueError(f"the data span {(ts.max() - start) / DAY_S:.1f} days; the protocol "
                         f"needs {config.days_needed()}")

    per_window = []
    for w in windows:
        seed = config.seed + w.index
        train_idx, test_idx = split_window(ts, card, y, w, config.delay_days,
                                           config.exclude_known_cards)
        X_train, y_train = X[train_idx], y[train_idx].astype(np.int64)
        X_test, y_test = X[test_idx], y[test_idx]
        frauds = X_train[y_train == 1]
        q_hold, fit_rows = holdout_split(frauds, config.quality_holdout, seed)
        if len(fit_rows) < 10 or not y_test.any():
            raise ValueError(f"window {w.index}: {len(frauds)} training frauds, "
                             f"{int(y_test.sum())} test frauds: too few")
        n = int(round(config.ratio * len(frauds)))
        say(f"window {w.index + 1}/{len(windows)}: {len(train_idx):,} training rows, "
            f"{len(frauds):,} frauds ({len(fit_rows):,} fit the generators); "
            f"{n:,} synthetic rows per variant")
        candidates, fits = _candidates(config, fit_rows, X_train[y_train == 0], kinds,
                                       n * config.oversample, seed, say)

        params = XGBParams(n_estimators=config.n_estimators, max_depth=config.max_depth,
                           learning_rate=0.1, n_jobs=config.n_jobs, seed=seed)

        def classifier(X_fit: np.ndarray, y_fit: np.ndarray) -> XGBoostModel:
            return XGBoostModel.train(X_fit, y_fit, names, params)  # the trainer's own training

        base = classifier(X_train, y_train)
        base_test = base.predict_proba(X_test)
        day = np.floor((ts[test_idx] - w.test_start) / DAY_S).astype(np.int64)
        out: dict[str, Any] = {}
        for variant in variants:
            entry: dict[str, Any] = {}
            score = base_test
            if variant != "none":
                generator, _, target = variant.partition("+")
                rows, info = _pick(candidates[generator], n, target, base, fit_rows,
                                   config, seed)
                entry["novelty" if target == "novel" else "clusters"] = info
                X_aug = np.vstack([X_train, rows])
                y_aug = np.r_[y_train, np.ones(len(rows), np.int64)]
                score = classifier(X_aug, y_aug).predict_proba(X_test)
                q = quality_report(fit_rows, rows, q_hold, names, seed=seed, n_jobs=config.n_jobs)
                entry["quality"] = {k: q[k] for k in ("c2st_auc", "c2st_reference_auc",
                                                       "dcr_share", "corr_distance", "ks_mean")}
                g = paired_ap_gain(y_test, base_test, score, resamples=config.bootstrap_resamples,
                                   confidence=config.confidence, seed=seed)
                entry["gain"] = g.to_dict()
            entry["metrics"] = score_metrics(y_test, score, day, card[test_idx],
                                             threshold=config.threshold,
                                             top_k_cards=config.top_k_cards,
                                             alert_budget=config.alert_budget)
            out[variant] = entry
            if variant != "none":
                say(f"  {variant:<28} AP {entry['metrics']['average_precision']:.4f} "
                    f"gain {entry['gain']['estimate']:+.4f}  C2ST {q['c2st_auc']:.3f}  "
                    f"DCR {q['dcr_share']:.3f}")
        per_window.append({"window": w.to_dict(), "n_train_frauds": len(frauds),
                           "n_test_frauds": int(y_test.sum()), "fits": fits, "variants": out})

    return jsonable({"config": asdict(config), "variants": variants, "per_window": per_window,
                   "summary": _summary(per_window, variants, config.confidence),
                   "wall_seconds": time.perf_counter() - t_start})


def _candidates(config: StudyConfig, fit_rows: np.ndarray, legit_pool: np.ndarray,
                kinds: list[Any], m: int, seed: int,
                say: Progress) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``m`` candidate rows of every generator, and each fit's steps, loss and seconds."""
    common = dict(hidden=config.diffusion_hidden, device=config.device, seed=seed)
    out, fits = {}, {}
    t0 = time.perf_counter()
    steps = config.diffusion_steps or default_steps(len(fit_rows))
    out["frauds_only"], model = synthesize_frauds(fit_rows, kinds, m, steps=steps, **common)
    fits["frauds_only"] = _fit_info(model, time.perf_counter() - t0)
    if config.guidance:
        t0 = time.perf_counter()
        legit = legit_sample(legit_pool, np.ones(len(legit_pool), bool),
                             config.legit_per_fraud * len(fit_rows), seed)
        steps = config.conditional_steps or default_steps(len(fit_rows) + len(legit))
        w0, *rest = config.guidance
        out[f"conditional_w{float(w0):g}"], cond = synthesize_frauds(
            fit_rows, kinds, m, X_legit=legit, steps=steps, p_uncond=config.p_uncond,
            guidance=w0, **common)
        for w in rest:
            out[f"conditional_w{float(w):g}"] = cond.sample(m, seed=seed + 1, guidance=w)
        fits["conditional"] = {**_fit_info(cond, time.perf_counter() - t0), "n_legit": len(legit)}
    say("  fits: " + ", ".join(f"{k} {v['steps']} steps {v['seconds']:.0f}s"
                               for k, v in fits.items()))
    return out, fits


def _fit_info(model: Any, seconds: float) -> dict[str, Any]:
    return {"steps": model.steps_, "loss": model.loss_, "seconds": seconds}


def _pick(candidates: np.ndarray, n: int, target: str, champion: XGBoostModel,
          real: np.ndarray, config: StudyConfig, seed: int) -> tuple[np.ndarray, Any]:
    """The ``n`` rows a variant adds (``novel``: at most ``n``), and the cluster counts when
    targeted by cluster, or the near-copies dropped when ``novel``."""
    idx, info = select(target or "none", candidates, n, score=champion.predict_proba, real=real,
                       threshold=config.threshold, k=config.n_clusters, seed=seed)
    return candidates[idx], info


def _summary(per_window: Sequence[Mapping[str, Any]], variants: Sequence[str],
             confidence: float) -> dict[str, Any]:
    """Per variant: means across windows, and the ledger's summary of the windows' gains."""
    out: dict[str, Any] = {}
    for v in variants:
        rows = [w["variants"][v] for w in per_window]
        s: dict[str, Any] = {"average_precision": _mean([r["metrics"]["average_precision"]
                                                         for r in rows])}
        if v != "none":
            s["c2st_auc"] = _mean([r["quality"]["c2st_auc"] for r in rows])
            s["dcr_share"] = _mean([r["quality"]["dcr_share"] for r in rows])
            s["gain"] = _mean([r["gain"]["estimate"] for r in rows])
            s["ledger"] = ledger_summary([r["gain"] for r in rows], confidence)
            s["windows_ahead"] = sum(r["gain"]["estimate"] > 0 for r in rows)
        out[v] = s
    return out


def summarize_seeds(results: Sequence[Mapping[str, Any]],
                    confidence: float = 0.9) -> dict[str, Any]:
    """Pool runs on different seeds: per variant, each number's mean across seeds with a t
    interval (seed = unit), ``vs_frauds_only`` (its AP gain minus ``frauds_only``'s, same
    windows), and the ledger's summary of every window's gain of every seed."""
    variants = list(results[0]["variants"])
    out: dict[str, Any] = {"n_seeds": len(results), "confidence": confidence,
                           "variants": variants, "summary": {}}
    for v in variants:
        row: dict[str, Any] = {}
        for key in ("average_precision", "c2st_auc", "dcr_share", "gain"):
            if key in results[0]["summary"][v]:
                row[key] = _interval([r["summary"][v][key] for r in results], confidence)
        if v not in ("none", "frauds_only"):
            # Paired with the default generator in the same windows: seed = unit again.
            row["vs_frauds_only"] = _interval(
                [_mean([w["variants"][v]["gain"]["estimate"]
                        - w["variants"]["frauds_only"]["gain"]["estimate"]
                        for w in r["per_window"]]) for r in results], confidence)
        if v != "none":
            gains = [w["variants"][v]["gain"] for r in results for w in r["per_window"]]
            row["ledger"] = ledger_summary(gains, confidence)
            row["windows_ahead"] = sum(g["estimate"] > 0 for g in gains)
            row["n_windows"] = len(gains)
        out["summary"][v] = row
    return out


def format_study_table(seeds: Mapping[str, Any]) -> str:
    """One line per variant: C2ST AUC, DCR share, AP, AP gain over none and over frauds_only
    (t intervals across seeds), and the ledger's interval over every window."""
    conf = f"{seeds['confidence']:.0%}"
    head = (f"{'variant':<24}{'C2ST AUC':>25}{'DCR share':>25}{'AP':>25}"
            f"{'AP gain [' + conf + ' t]':>28}{'vs frauds_only':>28}"
            f"{'ledger gain [' + conf + ']':>28}{'ahead':>7}")
    lines = [head]
    for v in seeds["variants"]:
        s = seeds["summary"][v]
        led = s.get("ledger")
        lines.append(
            f"{v:<24}{_ci(s.get('c2st_auc')):>25}{_ci(s.get('dcr_share')):>25}"
            f"{_ci(s['average_precision']):>25}{_ci(s.get('gain'), True):>28}"
            f"{_ci(s.get('vs_frauds_only'), True):>28}"
            + (fmt_interval({"mean": led["gain"], "low": led["low"], "high": led["high"]},
                            4, signed=True).rjust(28)
               + f"{s['windows_ahead']}/{s['n_windows']}".rjust(7) if led else ""))
    return "\n".join(lines)


def _interval(values: Sequence[float], confidence: float) -> dict[str, Any]:
    interval = t_interval(values, confidence)
    return {k: interval[k] for k in ("mean", "low", "high", "n")}


def _ci(s: Mapping[str, Any] | None, signed: bool = False) -> str:
    text = fmt_interval(s, 4, signed) if s else "n/a"
    return "-" if text == "n/a" else text  # the table marks a missing value with a dash


def _mean(values: Sequence[float]) -> float:
    x = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(x)) if x else math.nan
