"""One model-refresh cycle: diffusion-augmented challenger vs champion on a later holdout.

Pure: a :class:`~.window.WindowData` and the current champion in, a :class:`CycleResult`
out (the trainer process does the Kafka, registry and metrics around it).

The cycle, in the order of :data:`PHASES`:

``window``         split by event time: the holdout is the window's last ``holdout_days``;
                   training ends ``gap_days`` before it (labels of those days are not known
                   yet when a model goes live, the handbook's delay period).
``diffusion_fit``  a ``TabularDiffusion`` on the training frauds, less a share
                   (``quality_holdout``) kept back to judge the synthetic rows against;
                   none with fewer than ``min_fit_frauds`` to fit on.
``sample``         ``synthetic_ratio`` x (training frauds) synthetic frauds, picked from
                   ``oversample`` x as many candidates (``synthesis_target``,
                   ``models/targeting.py``; by default in sampling order, less near-copies
                   of training frauds).
``quality``        C2ST and DCR (``models/quality.py``); failing a gate rejects the synthetic
                   set and the cycle trains without it, and says so.
``train``          the challenger (real + the chosen share of the accepted synthetic rows)
                   and the same model without synthetic rows. With ``ratio_candidates`` the
                   synthetic ratio (0 included) is chosen by validation *inside the training
                   period*: models fitted before its last ``validation_days`` are compared on
                   those days (the holdout is never looked at), and the diffusion model is
                   fitted on frauds before them only.
``evaluate``       champion, challenger and challenger-without-synthetic on the holdout:
                   average precision, card precision@k, recall at the alert budget. The AP
                   gains (challenger vs champion, synthetic vs none) come with a paired,
                   stratified bootstrap interval (``models/paired.py``); the challenger is
                   promoted only when the lower bound of its gain over the champion clears
                   ``promote_margin`` at ``promote_confidence``. A refresh that cannot tell
                   them apart keeps the champion and says so, unless the champion is stale
                   (``stale_after_days``): then the challenger replaces it unless the
                   champion is shown better (``models/promotion_rule.py``).

With no batch champion yet, the champion is the online learner, judged on the scores it gave
the holdout's transactions when they happened (before it learned their labels). A champion
with no holdout scores at all loses to any challenger with a defined AP.

The synthetic gain on the holdout (``report["comparisons"]["synthetic"]``) is measured for
every cycle whose synthetic set passed the gates, also when validation chose ratio 0 (then
with the best non-zero ratio of the validation): it is the entry of the running
augmentation ledger (``models/ledger.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .augmentation import augment, conditioning_rows, feature_kinds, synthesize_frauds
from .batch import XGBoostModel, XGBParams
from .days import DAY_S, day_index, utc_date
from .deadline import CycleTimeout, Deadline
from .formats import fmt_number, jsonable
from .paired import GainInterval, paired_ap_gain, verdict
from .promotion_rule import decide, staleness_days
from .quality import gates, holdout_split, quality_report
from .ranking import score_metrics
from .ratio_validation import best_nonzero, validate_ratios, validation_plan
from .scorer import BatchModel
from .targeting import select
from .window import WindowData

__all__ = ["PHASES", "CycleTimeout", "Deadline", "NotEnoughData", "RefreshConfig",
           "CycleResult", "run_cycle", "HEADLINE_METRICS", "format_report"]

PHASES = ("window", "diffusion_fit", "sample", "quality", "train", "evaluate", "publish")
HEADLINE_METRICS = ("average_precision", "card_precision_at_k", "recall_at_budget")
Progress = Callable[[str], None]


class NotEnoughData(Exception):
    """The window cannot support a cycle yet (too few frauds, or an empty holdout)."""


@dataclass(frozen=True)
class RefreshConfig:
    holdout_days: float = 7.0
    gap_days: float = 7.0
    min_frauds: int = 30
    min_fit_frauds: int = 100              # fewer: no synthesis (the generator memorises)
    synthetic_ratio: float = 1.0
    diffusion_steps: int | None = None
    synthesis_model: str = "frauds_only"   # one of augmentation.SYNTHESIS_MODELS
    synthesis_target: str = "novel"        # one of targeting.TARGETS: which candidates to keep
    oversample: int = 3                    # candidates sampled per synthetic row kept (targeted)
    device: str = "auto"
    quality_holdout: float = 0.2
    max_c2st_auc: float = 0.75
    max_dcr_share: float = 0.10
    promote_margin: float = 0.005          # on the lower bound of the AP gain; -1: always promote
    promote_confidence: float = 0.9        # two-sided level of the bootstrap interval
    stale_after_days: float = 0.0          # champion's data this much older: ties promote; 0 never
    bootstrap_resamples: int = 1000
    ratio_candidates: tuple[float, ...] = ()  # empty: always synthetic_ratio, no validation
    validation_days: float = 3.0
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
              *, champion_trained_until: float | None = None,
              synthesis_off: str | None = None, deadline: Deadline | None = None,
              progress: Progress | None = None,
              on_phase: Callable[[str, float], None] | None = None) -> CycleResult:
    """Run every phase but ``publish`` (the caller's). Raises :class:`NotEnoughData` or
    :class:`CycleTimeout`; ``on_phase(name, seconds)`` hears each phase's duration.
    ``champion_trained_until``: the event time the champion's training rows end at (the
    ``split["train_end_ts"]`` of its own cycle), for its staleness; None: unknown, never stale.
    ``synthesis_off``: skip the diffusion phases, for this reason (the ledger's)."""
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
        raise NotEnoughData(f"{n_frauds} frauds before {utc_date(train_end)} to train on; "
                            f"need {config.min_frauds} (window "
                            f"{utc_date(split['window_first_ts'])}..{utc_date(t_end)}, holdout "
                            f"{config.holdout_days:g} d, gap {config.gap_days:g} d)")
    if not 0 < y_hold.sum() < len(y_hold):
        raise NotEnoughData(f"the holdout ({split['n_holdout']} rows, {split['n_holdout_frauds']} "
                            "frauds) needs both frauds and legitimate transactions")
    say(f"window: train {split['n_train']:,} rows ({n_frauds:,} frauds) until "
        f"{utc_date(train_end)}, holdout {split['n_holdout']:,} rows "
        f"({split['n_holdout_frauds']:,} frauds) from {utc_date(holdout_start)}")
    done("window")

    # -- diffusion, sample, quality -------------------------------------------------------
    synth: np.ndarray | None = None
    model = None
    plain: XGBoostModel | None = None  # the challenger without synthetic rows
    target, n_candidates, clusters, novelty = "none", 0, None, None
    quality: dict[str, Any] | None = None
    candidates = tuple(sorted(set(config.ratio_candidates)))
    top_ratio = max(candidates) if candidates else config.synthetic_ratio
    plan = validation_plan(data.ts[train], y_train, train_end, candidates,
                           config.validation_days)
    verdict_, why = "none", "synthetic_ratio is 0"
    n_synth = 0
    if synthesis_off is not None:
        verdict_, why = "none", synthesis_off
    elif top_ratio > 0:
        n_synth = int(round(top_ratio * n_frauds))
    if n_synth > 0:
        # When the ratio is validated, the diffusion model never sees the validation frauds:
        # otherwise the synthetic rows would carry them into the models being compared.
        pool = plan["inner"] if plan["usable"] else True
        q_hold, fit_rows = holdout_split(X_train[(y_train == 1) & pool],
                                         config.quality_holdout, config.seed)
        if len(fit_rows) < config.min_fit_frauds:  # a few dozen rows are memorised, not learned
            n_synth, why = 0, (f"{len(fit_rows)} frauds to fit the diffusion model on, fewer "
                               f"than {config.min_fit_frauds}: no synthetic rows this cycle")
            say(f"synthesis skipped: {why}")
    if n_synth > 0:
        legit = conditioning_rows(config.synthesis_model, X_train, (y_train == 0) & pool,
                                  len(fit_rows), config.seed)
        fit_started = time.perf_counter()

        def fit_progress(step: int, total: int, loss: float) -> None:
            say(f"diffusion fit step {step}/{total} loss {loss:.4f}")
            deadline.check()

        target = config.synthesis_target
        n_candidates = n_synth * (config.oversample if target != "none" else 1)
        say(f"diffusion: fit on {len(fit_rows):,} frauds ({config.device}), sample "
            f"{n_candidates:,}" + (f", keep {n_synth:,} ({target})" if target != "none" else ""))
        sampled, model = synthesize_frauds(
            fit_rows, feature_kinds(names), n_candidates, X_legit=legit,
            steps=config.diffusion_steps, device=config.device, seed=config.seed,
            progress=fit_progress)
        # synthesize_frauds fits then samples; split its time at the fit's end.
        fit_s = model.fit_seconds_
        phases["diffusion_fit"] = fit_s
        if on_phase is not None:
            on_phase("diffusion_fit", fit_s)
        clock[0] = fit_started + fit_s
        selector = None
        if target in ("boundary", "low"):
            # The model whose hard cases are kept: trained on the rows the diffusion model
            # may see (never the validation period's), so selection leaks nothing either.
            rows = pool if plan["usable"] else slice(None)
            selector = XGBoostModel.train(X_train[rows], y_train[rows], names, config.xgb,
                                          check=deadline.check)
            if not plan["usable"]:
                plain = selector  # the same rows and settings: the challenger without synthetic
        keep, target_info = select(target, sampled, n_synth,
                                   score=None if selector is None else selector.predict_proba,
                                   real=fit_rows, threshold=config.threshold, seed=config.seed)
        synth = sampled[keep]
        if target == "novel":
            novelty = target_info
            say(f"novel: {novelty['dropped']:,} of the first {novelty['looked_at']:,} "
                f"candidates were near-copies of training frauds; kept {len(synth):,}")
        elif target == "clusters":
            clusters = target_info
        done("sample")
        quality = quality_report(fit_rows, synth, q_hold, names, seed=config.seed,
                                 n_jobs=config.xgb.n_jobs)
        ok, reasons = gates(quality, config.max_c2st_auc, config.max_dcr_share)
        quality["gates_passed"], quality["gates_reasons"] = ok, reasons
        verdict_ = "accepted" if ok else "rejected"
        why = "passed the quality gates" if ok else "; ".join(reasons)
        say(f"quality: C2ST AUC {quality['c2st_auc']:.3f}, DCR share {quality['dcr_share']:.3f}: "
            f"synthetic set {verdict_} ({why})")
        if not ok:
            synth = None
        done("quality")

    # -- train ----------------------------------------------------------------------------
    def train_with(ratio: float, rows: np.ndarray | slice = slice(None)) -> tuple[XGBoostModel, int]:
        X, y = X_train[rows], y_train[rows]
        n = min(len(synth), int(round(ratio * y.sum()))) if synth is not None else 0
        if n == 0:
            return XGBoostModel.train(X, y, names, config.xgb, check=deadline.check), 0
        X_aug, y_aug, _ = augment(X, y, synth[:n])
        return XGBoostModel.train(X_aug, y_aug, names, config.xgb, check=deadline.check), n

    if plain is None:
        plain = XGBoostModel.train(X_train, y_train, names, config.xgb, check=deadline.check)
    validation = None
    ratio = top_ratio if synth is not None else 0.0
    if synth is not None and candidates:
        if plan["usable"]:
            validation = validate_ratios(plan, candidates, train_with, X_train, y_train)
            ratio = validation["chosen"]
            say("validation (last {:g} d of training): AP by ratio {}: ratio {:g}".format(
                config.validation_days,
                ", ".join(f"{r} {fmt_number(a, 4)}"
                          for r, a in validation["average_precision"].items()),
                ratio))
        else:
            ratio = config.synthetic_ratio
            validation = {"skipped": plan["why"], "chosen": ratio}
            say(f"validation skipped ({plan['why']}): ratio {ratio:g}")
    challenger, n_used = train_with(ratio) if ratio > 0 else (plain, 0)
    # The ledger's measurement: the synthetic rows' gain on the holdout, also when validation
    # chose 0 (then with the ratio it liked best among the others).
    measured = None
    if synth is not None:
        measured_ratio = ratio if ratio > 0 else best_nonzero(validation, candidates, top_ratio)
        measured = (measured_ratio, challenger if ratio > 0 else train_with(measured_ratio)[0])
    if synth is not None:
        why += f"; ratio {ratio:g}" + (" chosen by validation" if validation and
                                       "skipped" not in validation else "")
    say(f"train: challenger on {len(y_train):,} real"
        + (f" + {n_used:,} synthetic" if n_used else "") + " rows")
    done("train")

    # -- evaluate -------------------------------------------------------------------------
    X_hold = data.X[hold]
    day = day_index(data.ts[hold], holdout_start)
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
    champion_filled = np.where(known, champion_scores, 0.0)
    challenger_scores = challenger.predict_proba(X_hold)
    plain_scores = plain.predict_proba(X_hold)
    holdout = {
        "champion": metrics(champion_filled) if known.any() else _nan_metrics(),
        "challenger": metrics(challenger_scores),
        "challenger_no_synthetic": metrics(plain_scores),
    }
    holdout["champion"]["model"] = champion_name
    holdout["champion"]["scored_share"] = float(known.mean())

    def gain(a: np.ndarray, b: np.ndarray) -> GainInterval:
        return paired_ap_gain(y_hold, a, b, resamples=config.bootstrap_resamples,
                              confidence=config.promote_confidence, seed=config.seed,
                              check=deadline.check)

    comparisons: dict[str, Any] = {"challenger_vs_champion": None, "synthetic": None}
    ap_new = holdout["challenger"]["average_precision"]
    ap_old = holdout["champion"]["average_precision"]
    staleness = None if champion is None else staleness_days(train_end, champion_trained_until)
    stale = False
    if math.isnan(ap_new):
        promote, outcome, reason = False, "undefined", "the challenger's holdout AP is undefined"
    elif math.isnan(ap_old):
        promote, outcome = True, "no_champion_scores"
        reason = "the champion has no holdout scores to compare with"
    else:
        g = gain(champion_filled, challenger_scores)
        comparisons["challenger_vs_champion"] = g.to_dict()
        decision = decide(g, config.promote_margin, staleness=staleness,
                          stale_after_days=config.stale_after_days)
        promote, outcome, stale = decision.promote, decision.outcome, decision.stale
        reason = f"challenger AP {ap_new:.4f} vs champion AP {ap_old:.4f}: {decision.reason}"
    if measured is not None:
        measured_scores = challenger_scores if measured[1] is challenger else \
            measured[1].predict_proba(X_hold)
        s = gain(plain_scores, measured_scores)
        comparisons["synthetic"] = {**s.to_dict(), "ratio": measured[0],
                                    "ratio_used": ratio, "verdict": verdict(s, 0.0)}
        say(f"evaluate: synthetic rows (ratio {measured[0]:g}) vs none: AP gain {s.describe()}")
    say(f"evaluate: {reason}: {'promote' if promote else 'keep the champion'}")
    done("evaluate")

    report = {
        "split": split,
        "config": jsonable(asdict(config)),
        "synthetic": {"verdict": verdict_, "reason": why, "n_requested": n_synth,
                      "target": target, "n_candidates": n_candidates, "clusters": clusters,
                      "novelty": novelty,
                      "n_used": n_used, "ratio": ratio, "validation": jsonable(validation)},
        "quality": jsonable(quality),
        "diffusion": None if model is None else {
            "steps": model.steps_, "final_loss": model.loss_, "fit_seconds": model.fit_seconds_,
            "device": str(model.device_)},
        "holdout": jsonable(holdout),
        "comparisons": jsonable(comparisons),
        "augmentation_delta_ap": jsonable(ap_new - holdout["challenger_no_synthetic"]["average_precision"]),
        "decision": {"promote": promote, "reason": reason, "margin": config.promote_margin,
                     "confidence": config.promote_confidence, "verdict": outcome,
                     "champion_staleness_days": staleness, "champion_stale": stale,
                     "stale_after_days": config.stale_after_days},
        "phase_seconds": dict(phases),
    }
    return CycleResult(promote, reason, challenger, verdict_, synth, model, report, phases)


def format_report(report: dict[str, Any]) -> str:
    """The holdout metrics side by side, as a small text table for logs."""
    h = report["holdout"]
    cols = [("champion", h["champion"]), ("challenger", h["challenger"]),
            ("no synthetic", h["challenger_no_synthetic"])]
    lines = [f"{'holdout metric':<22}" + "".join(f"{name:>14}" for name, _ in cols)]
    for metric in HEADLINE_METRICS:
        lines.append(f"{metric:<22}"
                     + "".join(f"{fmt_number(m.get(metric), 4):>14}" for _, m in cols))
    for name, key in (("gain over champion", "challenger_vs_champion"),
                      ("gain of synthetic", "synthetic")):
        g = (report.get("comparisons") or {}).get(key)
        if g:
            low, high = (fmt_number(g[k], 4, signed=True) for k in ("low", "high"))
            lines.append(f"AP {name:<19}{fmt_number(g['estimate'], 4, signed=True):>14}   "
                         f"{g['confidence']:.0%} interval [{low}, {high}]"
                         + (f" at ratio {g['ratio']:g}" if "ratio" in g else ""))
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
