"""One model-refresh cycle: diffusion-augmented challenger vs champion on a later holdout.

Pure: a :class:`~.window.WindowData` and the current champion in, a :class:`CycleResult`
out (the trainer process does the Kafka, registry and metrics around it).

The cycle, in the order of :data:`PHASES`:

``window``         split by event time: the holdout is the window's last ``holdout_days``;
                   training ends ``gap_days`` before it (labels of those days are not known
                   yet when a model goes live, the handbook's delay period).
``diffusion_fit``  a ``TabularDiffusion`` on the training frauds, less a share
                   (``quality_holdout``) kept back to judge the synthetic rows against.
``sample``         ``synthetic_ratio`` x (training frauds) synthetic frauds.
``quality``        C2ST and DCR (``models/quality.py``); failing a gate rejects the synthetic
                   set and the cycle trains without it, and says so.
``train``          the challenger (real + accepted synthetic) and, for the report, the
                   challenger without synthetic data.
``evaluate``       champion, challenger and challenger-without-synthetic on the holdout:
                   average precision, card precision@k, recall at the alert budget.
                   Promote when the challenger's AP beats the champion's by ``promote_margin``.

With no batch champion yet, the champion is the online learner, judged on the scores it gave
the holdout's transactions when they happened (before it learned their labels).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .augmentation import feature_kinds, synthesize_frauds
from .batch import XGBoostModel, XGBParams
from .evaluation import DAY_S, score_metrics
from .quality import gates, quality_report
from .scorer import BatchModel
from .window import WindowData

__all__ = ["PHASES", "CycleTimeout", "Deadline", "NotEnoughData", "RefreshConfig",
           "CycleResult", "run_cycle", "HEADLINE_METRICS", "format_report"]

PHASES = ("window", "diffusion_fit", "sample", "quality", "train", "evaluate", "publish")
HEADLINE_METRICS = ("average_precision", "card_precision_at_k", "recall_at_budget")
Progress = Callable[[str], None]


class CycleTimeout(Exception):
    """The cycle ran past its time limit."""


class NotEnoughData(Exception):
    """The window cannot support a cycle yet (too few frauds, or an empty holdout)."""


class Deadline:
    """A wall-clock limit checked between phases and inside the long fits."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.ends = math.inf if seconds is None else time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.ends:
            raise CycleTimeout(f"the cycle ran past its {self.seconds:.0f} s limit")


@dataclass(frozen=True)
class RefreshConfig:
    holdout_days: float = 7.0
    gap_days: float = 7.0
    min_frauds: int = 30
    synthetic_ratio: float = 1.0
    diffusion_steps: int | None = None
    device: str = "auto"
    quality_holdout: float = 0.2
    max_c2st_auc: float = 0.75
    max_dcr_share: float = 0.10
    promote_margin: float = 0.005
    threshold: float = 0.5
    top_k_cards: int = 100
    alert_budget: float = 100
    xgb: XGBParams = field(default_factory=XGBParams)
    seed: int = 0


@dataclass
class CycleResult:
    promote: bool
    reason: str
    challenger: XGBoostModel
    synthetic_verdict: str                 # accepted | rejected | none
    synthetic: np.ndarray | None           # the accepted synthetic frauds (None otherwise)
    diffusion: Any | None                  # the fitted TabularDiffusion, when one was fitted
    report: dict[str, Any]                 # JSON-able: split, quality, holdout metrics, timings
    phase_seconds: dict[str, float]


def run_cycle(data: WindowData, champion: BatchModel | None, config: RefreshConfig = RefreshConfig(),
              *, deadline: Deadline | None = None, progress: Progress | None = None,
              on_phase: Callable[[str, float], None] | None = None) -> CycleResult:
    """Run every phase but ``publish`` (the caller's). Raises :class:`NotEnoughData` or
    :class:`CycleTimeout`; ``on_phase(name, seconds)`` hears each phase's duration."""
    say = progress or (lambda message: None)
    deadline = deadline or Deadline(None)
    phases: dict[str, float] = {}
    clock = [time.perf_counter()]

    def done(phase: str) -> None:
        now = time.perf_counter()
        phases[phase] = now - clock[0]
        clock[0] = now
        if on_phase is not None:
            on_phase(phase, phases[phase])
        deadline.check()

    # -- window ---------------------------------------------------------------------------
    names = data.feature_names
    if len(data) == 0:
        raise NotEnoughData("the training window is empty")
    t_end = float(data.ts.max())
    holdout_start = t_end - config.holdout_days * DAY_S
    train_end = holdout_start - config.gap_days * DAY_S
    train = data.ts < train_end
    hold = data.ts >= holdout_start
    X_train, y_train = data.X[train], data.y[train]
    n_frauds = int(y_train.sum())
    y_hold = data.y[hold]
    split = {
        "window_first_ts": float(data.ts.min()), "window_last_ts": t_end,
        "train_end_ts": train_end, "holdout_start_ts": holdout_start,
        "n_window": len(data), "n_train": int(train.sum()), "n_train_frauds": n_frauds,
        "n_holdout": int(hold.sum()), "n_holdout_frauds": int(y_hold.sum()),
    }
    if n_frauds < config.min_frauds:
        raise NotEnoughData(f"{n_frauds} frauds before {_day(train_end)} to train on; "
                            f"need {config.min_frauds} (window {_day(split['window_first_ts'])}.."
                            f"{_day(t_end)}, holdout {config.holdout_days:g} d, gap {config.gap_days:g} d)")
    if not 0 < y_hold.sum() < len(y_hold):
        raise NotEnoughData(f"the holdout ({split['n_holdout']} rows, {split['n_holdout_frauds']} "
                            "frauds) needs both frauds and legitimate transactions")
    say(f"window: train {split['n_train']:,} rows ({n_frauds:,} frauds) until {_day(train_end)}, "
        f"holdout {split['n_holdout']:,} rows ({split['n_holdout_frauds']:,} frauds) from "
        f"{_day(holdout_start)}")
    done("window")

    # -- diffusion, sample, quality -------------------------------------------------------
    synth: np.ndarray | None = None
    model = None
    quality: dict[str, Any] | None = None
    verdict, why = "none", "synthetic_ratio is 0"
    n_synth = int(round(config.synthetic_ratio * n_frauds))
    if n_synth > 0:
        frauds = X_train[y_train == 1]
        order = np.random.default_rng(config.seed).permutation(len(frauds))
        n_q = max(5, int(round(config.quality_holdout * len(frauds))))
        q_hold, fit_rows = frauds[order[:n_q]], frauds[order[n_q:]]
        fit_started = time.perf_counter()

        def fit_progress(step: int, total: int, loss: float) -> None:
            say(f"diffusion fit step {step}/{total} loss {loss:.4f}")
            deadline.check()

        say(f"diffusion: fit on {len(fit_rows):,} frauds ({config.device}), sample {n_synth:,}")
        synth, model = synthesize_frauds(
            fit_rows, feature_kinds(names), n_synth, steps=config.diffusion_steps,
            device=config.device, seed=config.seed, progress=fit_progress)
        # synthesize_frauds fits then samples; split its time at the fit's end.
        fit_s = model.fit_seconds_
        phases["diffusion_fit"] = fit_s
        if on_phase is not None:
            on_phase("diffusion_fit", fit_s)
        clock[0] = fit_started + fit_s
        done("sample")
        quality = quality_report(fit_rows, synth, q_hold, names, seed=config.seed,
                                 n_jobs=config.xgb.n_jobs)
        ok, reasons = gates(quality, config.max_c2st_auc, config.max_dcr_share)
        quality["gates_passed"], quality["gates_reasons"] = ok, reasons
        verdict = "accepted" if ok else "rejected"
        why = "passed the quality gates" if ok else "; ".join(reasons)
        say(f"quality: C2ST AUC {quality['c2st_auc']:.3f}, DCR share {quality['dcr_share']:.3f}: "
            f"synthetic set {verdict} ({why})")
        if not ok:
            synth = None
        done("quality")

    # -- train ----------------------------------------------------------------------------
    plain = XGBoostModel.train(X_train, y_train, names, config.xgb, check=deadline.check)
    if synth is not None:
        X_aug = np.vstack([X_train, synth])
        y_aug = np.concatenate([y_train, np.ones(len(synth), dtype=np.int64)])
        challenger = XGBoostModel.train(X_aug, y_aug, names, config.xgb, check=deadline.check)
    else:
        challenger = plain
    say(f"train: challenger on {len(y_train):,} real"
        + (f" + {len(synth):,} synthetic" if synth is not None else "") + " rows")
    done("train")

    # -- evaluate -------------------------------------------------------------------------
    X_hold = data.X[hold]
    day = np.floor((data.ts[hold] - holdout_start) / DAY_S).astype(np.int64)
    card = data.card[hold]

    def metrics(score: np.ndarray) -> dict[str, float]:
        return score_metrics(y_hold, score, day, card, threshold=config.threshold,
                             top_k_cards=config.top_k_cards, alert_budget=config.alert_budget)

    if champion is not None:
        champion_name = champion.version
        champion_scores = champion.predict_proba(_columns(X_hold, names, champion.feature_names))
    else:
        champion_name = "online (scoring-time scores)"
        champion_scores = data.score_online[hold]
    known = ~np.isnan(champion_scores)
    holdout = {
        "champion": metrics(np.where(known, champion_scores, 0.0)) if known.any() else _nan_metrics(),
        "challenger": metrics(challenger.predict_proba(X_hold)),
        "challenger_no_synthetic": metrics(plain.predict_proba(X_hold)),
    }
    holdout["champion"]["model"] = champion_name
    holdout["champion"]["scored_share"] = float(known.mean())
    ap_new = holdout["challenger"]["average_precision"]
    ap_old = holdout["champion"]["average_precision"]
    if math.isnan(ap_new):
        promote, reason = False, "the challenger's holdout AP is undefined"
    elif math.isnan(ap_old):
        promote, reason = True, "the champion has no holdout scores to compare with"
    else:
        promote = ap_new >= ap_old + config.promote_margin
        reason = (f"challenger AP {ap_new:.4f} {'>=' if promote else '<'} champion AP "
                  f"{ap_old:.4f} + margin {config.promote_margin:g}")
    say(f"evaluate: {reason}: {'promote' if promote else 'keep the champion'}")
    done("evaluate")

    report = {
        "split": split,
        "config": _jsonable(asdict(config)),
        "synthetic": {"verdict": verdict, "reason": why, "n_requested": n_synth,
                      "n_used": 0 if synth is None else len(synth)},
        "quality": _jsonable(quality),
        "diffusion": None if model is None else {
            "steps": model.steps_, "final_loss": model.loss_, "fit_seconds": model.fit_seconds_,
            "device": str(model.device_)},
        "holdout": _jsonable(holdout),
        "augmentation_delta_ap": _jsonable(ap_new - holdout["challenger_no_synthetic"]["average_precision"]),
        "decision": {"promote": promote, "reason": reason, "margin": config.promote_margin},
        "phase_seconds": dict(phases),
    }
    return CycleResult(promote, reason, challenger, verdict, synth, model, report, phases)


def format_report(report: dict[str, Any]) -> str:
    """The holdout metrics side by side, as a small text table for logs."""
    h = report["holdout"]
    cols = [("champion", h["champion"]), ("challenger", h["challenger"]),
            ("no synthetic", h["challenger_no_synthetic"])]
    lines = [f"{'holdout metric':<22}" + "".join(f"{name:>14}" for name, _ in cols)]
    for metric in HEADLINE_METRICS:
        lines.append(f"{metric:<22}" + "".join(f"{_fmt(m.get(metric)):>14}" for _, m in cols))
    lines.append(f"synthetic: {report['synthetic']['verdict']} ({report['synthetic']['reason']}); "
                 f"decision: {'promote' if report['decision']['promote'] else 'keep'} "
                 f"({report['decision']['reason']})")
    return "\n".join(lines)


def _columns(X: np.ndarray, have: list[str], want: list[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(have)}
    cols = [X[:, index[n]] if n in index else np.zeros(len(X)) for n in want]
    return np.column_stack(cols) if cols else np.zeros((len(X), 0))


def _nan_metrics() -> dict[str, float]:
    return {m: math.nan for m in HEADLINE_METRICS}


def _fmt(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _jsonable(obj: Any) -> Any:
    """NaN/inf become None so the report is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
