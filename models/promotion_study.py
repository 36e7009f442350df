"""Do the trainer's promotion decisions agree with what more evidence says? A scripted run.

The trainer promotes a challenger when the lower bound of its paired-bootstrap AP gain over
the champion, on the window's holdout, clears a margin (or, with a staleness bound set, once
the champion is stale, unless it is shown better: ``models/promotion_rule.py``). Whether that
rule promotes on noise is a question about later data, which the decision never sees. This
study replays a stream's trainer cycles and answers it:

- cycle ``k`` ends at ``t_k = t_0 + k * every_days``; the trainer's own cycle
  (:func:`~.refresh.run_cycle`, the trainer's :class:`~.refresh.RefreshConfig`) runs on the
  rows of ``[t_k - window_days, t_k)`` against the current champion and decides; a promoted
  challenger is the champion of the next cycle, as in the trainer, and its training rows'
  end is what the champion's staleness is counted from;
- the reference: the same cycle run again with ``reference_seeds`` other seeds (its own
  diffusion fit, targeting, validation split and trees), each challenger and the champion
  scored on the ``horizon_days`` after ``t_k``; the reference promotes when the mean AP gain
  over the champion on those later rows is above ``reference_margin`` (0.005, the trainer's
  default margin; its own, so a trainer rule with another margin is judged by the same
  reference);
- a cycle *agrees* when the trainer promoted exactly when the reference would. The first
  cycle has no champion (it always promotes) and is not counted.

The later week is a sample too: the reference's mean gain carries a paired-bootstrap interval
on the later rows (every model scored on each same resample, ``reference_confidence``). The
reference is *decisive* when that interval lies wholly above the margin (promote) or wholly
below it (keep); otherwise the later week cannot tell either, and a disagreement there is
within the reference's own noise. The agreement reports both: every counted cycle, and the
decisive ones, and how many agreements even a rule that knew every cycle's true gain could
expect against so noisy a reference (:func:`expected_oracle_agreement`).

Pure: arrays in, a JSON-able dict out (no Kafka, environment or metrics).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .days import DAY_S, utc_iso
from .formats import jsonable
from .paired import paired_mean_ap_gain
from .ranking import average_precision
from .refresh import NotEnoughData, RefreshConfig, run_cycle
from .window import WindowData

__all__ = ["PromotionStudyConfig", "promotion_study", "format_cycles",
           "expected_oracle_agreement"]


@dataclass(frozen=True)
class PromotionStudyConfig:
    cycles: int = 10
    every_days: float = 3.0
    window_days: float = 30.0        # the trainer's window (FRAUDSTREAM_TRAINER_WINDOW_DAYS)
    horizon_days: float = 7.0        # later rows the reference scores
    reference_seeds: int = 5
    reference_margin: float = 0.005  # later AP gain the reference calls an improvement
    reference_confidence: float = 0.9  # of its interval (the trainer's default confidence)
    reference_resamples: int = 1000
    # Feature history before the first window: the longest terminal window plus the label
    # delay its windows end at, so every window the trainer sees has full features, as in a
    # service that has run for months. With less, early windows hold half-filled features and
    # any fresher model looks better later for that reason alone.
    burn_in_days: float = 37.0

    def days_needed(self) -> float:
        return (self.burn_in_days + self.window_days + (self.cycles - 1) * self.every_days
                + self.horizon_days)


def expected_oracle_agreement(gains: list[float], ses: list[float], margin: float) -> float:
    """How many of these cycles a rule that knew each true gain would be expected to agree on
    with the reference, whose estimate of the gain has standard error ``se``.

    Such a rule promotes exactly when the true gain ``g`` is above the margin; the reference's
    estimate lands on the same side with probability ``Phi(|g - margin| / se)``. The true gain
    is unknown, so the reference's own estimate stands in for it (a plug-in): an estimate
    lies on average farther from the margin than the truth, so this errs high, in the goal's
    favour. A cycle with ``se`` 0 counts 1.
    """
    total = 0.0
    for g, se in zip(gains, ses, strict=True):
        z = abs(g - margin) / se if se > 0 else math.inf
        total += 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    return total


def promotion_study(X: np.ndarray, y: np.ndarray, ts: np.ndarray, card: np.ndarray,
                    tx_id: np.ndarray, names: list[str], refresh: RefreshConfig,
                    study: PromotionStudyConfig = PromotionStudyConfig(), *,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Replay ``study.cycles`` trainer cycles over the rows (sorted or not) and compare each
    decision with the reference; returns cycles, agreement and the configs."""
    say = progress or (lambda message: None)
    order = np.argsort(ts, kind="stable")
    X, y = np.asarray(X, np.float64)[order], np.asarray(y, np.int64)[order]
    ts = np.asarray(ts)[order]
    card, tx_id = np.asarray(card, object)[order], np.asarray(tx_id, object)[order]
    t0 = float(ts[0]) + (study.burn_in_days + study.window_days) * DAY_S
    if t0 + ((study.cycles - 1) * study.every_days + study.horizon_days) * DAY_S > ts[-1] + 1:
        raise ValueError(f"the rows span {(ts[-1] - ts[0]) / DAY_S:.1f} days; "
                         f"{study.cycles} cycles need {study.days_needed():g}")
    champion, champion_until = None, None
    cycles: list[dict[str, Any]] = []
    for k in range(study.cycles):
        t = t0 + k * study.every_days * DAY_S
        window = (ts >= t - study.window_days * DAY_S) & (ts < t)
        later = (ts >= t) & (ts < t + study.horizon_days * DAY_S)
        n_rows, n_frauds = int(window.sum()), int(y[window].sum())
        data = WindowData(names, X[window], y[window], ts[window], card[window], tx_id[window],
                          np.full(n_rows, np.nan))
        say(f"cycle {k + 1}/{study.cycles} ending {utc_iso(t)}: {n_rows:,} rows, "
            f"{n_frauds} frauds; the trainer's decision")
        row: dict[str, Any] = {"cycle": k + 1, "end": utc_iso(t), "rows": n_rows,
                               "frauds": n_frauds, "later_frauds": int(y[later].sum())}
        try:
            decided = run_cycle(data, champion, refresh, champion_trained_until=champion_until)
        except NotEnoughData as exc:
            row.update(decision="skipped", reason=str(exc), counted=False)
            cycles.append(row)
            say(f"cycle {k + 1}: skipped ({exc})")
            continue
        had_champion = champion is not None
        row.update(decision="promote" if decided.promote else "keep", reason=decided.reason,
                   synthetic=decided.synthetic_verdict,
                   champion_staleness_days=decided.report["decision"]["champion_staleness_days"],
                   champion_stale=decided.report["decision"]["champion_stale"],
                   holdout_gain=decided.report["comparisons"]["challenger_vs_champion"],
                   quality={k_: decided.report["quality"].get(k_)
                            for k_ in ("c2st_auc", "dcr_share")} if decided.report["quality"]
                   else None)
        if had_champion and y[later].any() and not y[later].all():
            # Every model here was trained by run_cycle on these columns, in this order.
            X_later, y_later = X[later], y[later]
            champion_scores = champion.predict_proba(X_later)
            champion_ap = float(average_precision(y_later, champion_scores))
            decided_scores = decided.challenger.predict_proba(X_later)
            row["later"] = {"champion_ap": champion_ap, "decided_challenger_gain":
                            float(average_precision(y_later, decided_scores)) - champion_ap}
            gains, scores = [], []
            for j in range(study.reference_seeds):
                seed = refresh.seed + 1 + j
                say(f"cycle {k + 1}: reference seed {j + 1}/{study.reference_seeds}")
                ref = run_cycle(data, champion, replace(
                    refresh, seed=seed, xgb=replace(refresh.xgb, seed=seed),
                    bootstrap_resamples=min(refresh.bootstrap_resamples, 50)),
                    champion_trained_until=champion_until)
                scores.append(ref.challenger.predict_proba(X_later))
                gains.append(float(average_precision(y_later, scores[-1])) - champion_ap)
            mean = float(np.mean(gains))
            reference = "promote" if mean > study.reference_margin else "keep"
            interval = paired_mean_ap_gain(
                y_later, champion_scores, scores,
                resamples=study.reference_resamples, confidence=study.reference_confidence,
                seed=refresh.seed)
            decisive = (interval.low > study.reference_margin
                        or interval.high < study.reference_margin)
            row["later"].update(reference_gains=gains, reference_mean_gain=mean,
                                reference=reference, reference_interval=interval.to_dict(),
                                reference_decisive=decisive)
            row["counted"] = True
            row["agrees"] = reference == row["decision"]
            say(f"cycle {k + 1}: trainer {row['decision']}, reference {reference} "
                f"(mean later gain {mean:+.4f} [{interval.low:+.4f}, {interval.high:+.4f}] "
                f"over {len(gains)} seeds{'' if decisive else ', within its noise'}): "
                f"{'agree' if row['agrees'] else 'DISAGREE'}")
        else:
            row["counted"] = False
            say(f"cycle {k + 1}: trainer {row['decision']} "
                f"({'no champion yet' if not had_champion else 'no later frauds'}): not counted")
        if decided.promote:
            champion = decided.challenger
            champion_until = decided.report["split"]["train_end_ts"]
        cycles.append(row)
    counted = [c for c in cycles if c.get("counted")]
    agree = sum(c["agrees"] for c in counted)
    decisive = [c for c in counted if c["later"]["reference_decisive"]]
    return jsonable({
        "cycles": cycles,
        "agreement": {"agree": agree, "counted": len(counted),
                      "share": agree / len(counted) if counted else math.nan,
                      "promoted": sum(c["decision"] == "promote" for c in counted),
                      "reference_promote": sum(c["later"]["reference"] == "promote"
                                               for c in counted),
                      "decisive": len(decisive),
                      "decisive_agree": sum(c["agrees"] for c in decisive),
                      "oracle_expected": expected_oracle_agreement(
                          [c["later"]["reference_mean_gain"] for c in counted],
                          [c["later"]["reference_interval"]["se"] for c in counted],
                          study.reference_margin)},
        "study": asdict(study),
        "refresh": asdict(refresh),
    })


def format_cycles(result: dict[str, Any]) -> str:
    """One line per cycle, then the agreement."""
    lines = ["cycle  end                   frauds  stale d  trainer  "
             "holdout gain [interval]      reference  mean later gain [interval]    agrees"]
    for c in result["cycles"]:
        g = c.get("holdout_gain")
        gain = (f"{g['estimate']:+.4f} [{g['low']:+.4f}, {g['high']:+.4f}]" if g else "-")
        later = c.get("later") or {}
        ref = later.get("reference", "-")
        mean, r = later.get("reference_mean_gain"), later.get("reference_interval")
        ref_gain = "-" if mean is None else (
            f"{mean:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}]"
            f"{'' if later['reference_decisive'] else '*'}")
        age = c.get("champion_staleness_days")
        age = "-" if age is None else f"{age:.0f}" + ("!" if c.get("champion_stale") else "")
        lines.append(f"{c['cycle']:>5}  {c['end']:<20}  {c['frauds']:>6}  {age:>7}  "
                     f"{c['decision']:<7}  "
                     f"{gain:<27}  {ref:<9}  {ref_gain:<29}  "
                     f"{'yes' if c.get('agrees') else ('no' if c.get('counted') else '-')}")
    a = result["agreement"]
    lines.append(f"agreement: {a['agree']}/{a['counted']} counted cycles "
                 f"(trainer promoted {a['promoted']}, the reference would have promoted "
                 f"{a['reference_promote']}); {a['decisive_agree']}/{a['decisive']} of the "
                 "cycles the later week can decide (* : its interval holds the margin; "
                 "stale d: how many days older the champion's training data ends, ! stale)")
    if a.get("oracle_expected") is not None:
        lines.append(f"a rule that knew each cycle's true gain could expect about "
                     f"{a['oracle_expected']:.1f}/{a['counted']} against this reference's "
                     "noise (its own estimates taken as the truth: errs high)")
    return "\n".join(lines)
