"""Detection quality of the online learner and the batch model, per feature set and label mode.

The report behind ``fraudstream evaluate-detection``: on one labelled stream of transactions
(the simulator's, for one scenario mix) it measures

* the **online learner**, prequentially (models/online_eval.py): each transaction scored
  before its label, labels learned when they would arrive live, in each label mode (in
  ``fraud_only``, legitimate rows mature by their partition's label watermark, with cards
  spread over ``partitions`` as the producers spread them);
* the **batch model** (XGBoost, the trainer's settings), time-split: trained, as the
  trainer trains it, on the last ``train_days`` of labels known when the test window starts
  (never earlier than a burn-in in which terminal features cannot yet know any fraud),
  scored on the test window;
* the **batch model under the handbook's protocol** (models/detection_handbook.py): weekly
  windows of 7 days' training, 7 days' delay and 7 days' test with known cards removed, its
  hyper-parameters chosen on a validation window before each test week, beside the
  trainer's settings: the protocol of the handbook's reference AP;

for each feature set, side by side. Metrics: average precision (AP), ROC AUC, and the
handbook's card precision@k (mean over days). The online learner is reported on the batch
model's test window (comparable) and from the first label on (``since_labels``), with the
worst week's AP over that week's fraud rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .batch import XGBoostModel, XGBParams
from .days import DAY_S, day_index
from .detection_handbook import HANDBOOK_PROTOCOL, XGBGrid, evaluate_handbook, handbook_windows
from .detection_handbook import window_metrics as _metrics
from .evaluation_windows import WindowProtocol
from .features import FEATURE_SETS, compute_features, feature_names
from .formats import fmt_interval, fmt_number, jsonable
from .online import OnlineLearner
from .online_eval import prequential_replay
from .ranking import average_precision

__all__ = ["DetectionConfig", "OnlineSpec", "evaluate_detection", "format_detection"]


@dataclass(frozen=True)
class OnlineSpec:
    """One online learner to measure: a name for the report and ``OnlineLearner`` kwargs."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DetectionConfig:
    delay_days: float = 7.0
    burn_in_days: float = 7.0
    test_days: float = 20.0
    # The batch model's training window: the trainer's (FRAUDSTREAM_TRAINER_WINDOW_DAYS'
    # default). None: every labelled day after the burn-in.
    train_days: float | None = 30.0
    feature_sets: tuple[str, ...] = ("handbook", "extended")
    label_modes: tuple[str, ...] = ("all", "fraud_only")
    online: tuple[OnlineSpec, ...] = (OnlineSpec("binned"),)
    top_k: int = 100
    partitions: int = 8  # fraud_only: label watermarks per partition, as a worker keeps them
    xgb: XGBParams = XGBParams()
    handbook: WindowProtocol | None = HANDBOOK_PROTOCOL  # None: no handbook-protocol windows
    grid: XGBGrid = XGBGrid()  # tried on each handbook window's validation window
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [s for s in self.feature_sets if s not in FEATURE_SETS]
        if unknown:
            raise ValueError(f"unknown feature sets {unknown}; known: {sorted(FEATURE_SETS)}")
        if self.test_days <= 0 or self.burn_in_days < 0 or self.delay_days < 0:
            raise ValueError("test_days must be > 0; burn_in_days and delay_days >= 0")
        if self.train_days is not None and self.train_days <= 0:
            raise ValueError("train_days must be > 0 (or None: all labelled days)")


def evaluate_detection(transactions: pd.DataFrame, config: DetectionConfig = DetectionConfig(),
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The report's numbers for one stream; see the module docstring.

    ``transactions`` has ``tx_id``, ``ts``, ``card_id``, ``terminal_id``, ``amount`` and
    ``is_fraud`` (the simulator's frame). Returns a JSON-able dict: ``config``, ``data``,
    ``batch[feature_set]``, ``batch_handbook[feature_set]`` (when ``config.handbook``; see
    :func:`~.detection_handbook.evaluate_handbook`),
    ``online[feature_set][label_mode][learner]``.
    """
    say = progress or (lambda message: None)
    c = config
    df = transactions.sort_values("ts", kind="stable").reset_index(drop=True)
    ts = df["ts"].to_numpy(dtype=np.float64)
    y = df["is_fraud"].to_numpy(dtype=bool)
    card = df["card_id"].to_numpy()
    start = math.floor(ts.min() / DAY_S) * DAY_S
    end = start + math.ceil((ts.max() - start) / DAY_S + 1e-9) * DAY_S
    day = day_index(ts, start)
    test_from = end - c.test_days * DAY_S
    delay_s = c.delay_days * DAY_S
    train_from = start + c.burn_in_days * DAY_S
    if c.train_days is not None:
        train_from = max(train_from, test_from - delay_s - c.train_days * DAY_S)
    train = (ts >= train_from) & (ts + delay_s <= test_from)
    test = ts >= test_from
    if not (train & y).any() or not (test & y).any():
        raise ValueError("the stream is too short for burn-in, delay and test window: "
                         f"{(end - start) / DAY_S:g} days")
    pairs = handbook_windows(start, end, c.handbook) if c.handbook is not None else []

    result: dict[str, Any] = {
        "config": jsonable(asdict(c)),
        "data": {"transactions": len(df), "frauds": int(y.sum()), "days": (end - start) / DAY_S,
                 "train_rows": int(train.sum()), "test_rows": int(test.sum()),
                 "train_from_day": (train_from - start) / DAY_S,
                 "test_base_rate": float(y[test].mean())},
        "batch": {}, "batch_handbook": {}, "online": {},
    }
    for fs in c.feature_sets:
        names = feature_names(feature_set=fs)
        t0 = time.perf_counter()
        features = compute_features(df, delay_s, feature_set=fs)
        say(f"{fs}: {len(names)} features in {time.perf_counter() - t0:.1f} s")
        X = features[names].to_numpy(dtype=np.float64)
        model = XGBoostModel.train(X[train], y[train], names, c.xgb)
        scores = model.predict_proba(X[test])
        result["batch"][fs] = _metrics(y[test], scores, day[test], card[test], c.top_k)
        say(f"{fs}: batch AP {result['batch'][fs]['average_precision']:.3f} on the test window")
        if c.handbook is not None:
            hb = evaluate_handbook(X, ts, y, card, names, pairs, protocol=c.handbook, grid=c.grid,
                                   base=c.xgb, top_k=c.top_k, progress=say)
            result["batch_handbook"][fs] = hb
            say(f"{fs}: batch AP {fmt_interval(hb['summary']['average_precision'])} over "
                f"{len(pairs)} handbook windows (tuned)")
        result["online"][fs] = {}
        for mode in c.label_modes:
            result["online"][fs][mode] = {}
            for spec in c.online:
                learner = OnlineLearner(seed=c.seed, **dict(spec.kwargs))
                run = prequential_replay(features, ts, y, names, learner, delay_s,
                                         mode,  # type: ignore[arg-type]
                                         partitions=c.partitions, card_ids=card)
                s = run.scores
                # "Once labels have arrived": from the first label this run's learner learned
                # (in fraud_only the first fraud label comes after start + delay; rows before
                # it are scored by a learner that has learned nothing).
                since_labels = ts >= run.first_label_ts
                starts = (np.arange(run.first_label_ts, end - 7 * DAY_S + 1, 7 * DAY_S)
                          if np.isfinite(run.first_label_ts) else [])
                weeks = [(ts >= w) & (ts < w + 7 * DAY_S) for w in starts]
                week_ratios = [average_precision(y[w], s[w]) / y[w].mean()
                               for w in weeks if y[w].any()]
                entry = {
                    "test_window": _metrics(y[test], s[test], day[test], card[test], c.top_k),
                    "since_labels": _metrics(y[since_labels], s[since_labels],
                                             day[since_labels], card[since_labels], c.top_k),
                    "worst_week_ap_over_base_rate": min(week_ratios) if week_ratios else None,
                    "first_label_day": (run.first_label_ts - start) / DAY_S,
                    "score_us_per_row": 1e6 * run.score_seconds / len(s),
                    "learn_us_per_label": 1e6 * run.learn_seconds / max(run.learned, 1),
                }
                result["online"][fs][mode][spec.name] = entry
                say(f"{fs} {mode} {spec.name}: AP {entry['test_window']['average_precision']:.3f}"
                    f" (test window), {entry['since_labels']['average_precision']:.3f} "
                    "(since labels)")
    return result


def format_detection(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown tables: ``results`` maps a mix name to :func:`evaluate_detection`. The first
    has a row per model and protocol (handbook windows: mean [95 % interval] over windows);
    the second, when there are handbook windows, one row per window."""
    lines = ["| mix | feature set | model | label mode | AP test | AUC test | CP@k test "
             "| AP since labels | worst week AP / base |",
             "|---|---|---|---|---|---|---|---|---|"]
    for mix, r in results.items():
        for fs, batch in r["batch"].items():
            lines.append(f"| {mix} | {fs} | batch XGBoost | (time split) "
                         f"| {fmt_number(batch['average_precision'])} "
                         f"| {fmt_number(batch['roc_auc'])} "
                         f"| {fmt_number(batch['card_precision_at_k'])} | | |")
            if fs in r.get("batch_handbook", {}):
                lines.extend(_handbook_rows(mix, fs, r["batch_handbook"][fs]))
            for mode, learners in r["online"][fs].items():
                for name, e in learners.items():
                    t, sl = e["test_window"], e["since_labels"]
                    lines.append(
                        f"| {mix} | {fs} | online {name} | {mode} "
                        f"| {fmt_number(t['average_precision'])} | {fmt_number(t['roc_auc'])} "
                        f"| {fmt_number(t['card_precision_at_k'])} | "
                        f"{fmt_number(sl['average_precision'])} | "
                        f"{fmt_number(e['worst_week_ap_over_base_rate'], 1)} |")
        lines.append(f"| {mix} | test base rate {fmt_number(r['data']['test_base_rate'], 4)} "
                     "| | | | | | | |")
    windows = [(mix, fs, w) for mix, r in results.items()
               for fs, hb in r.get("batch_handbook", {}).items() for w in hb["windows"]]
    if windows:
        lines += ["", "| mix | feature set | test week | test rows (known cards out) | frauds "
                  "| chosen depth / trees / rate | validation AP | AP tuned | AP trainer defaults "
                  "| best grid AP on test |", "|---|---|---|---|---|---|---|---|---|---|"]
        for mix, fs, w in windows:
            ch, best = w["chosen"], max((g["test_average_precision"] or 0.0) for g in w["grid"])
            lines.append(
                f"| {mix} | {fs} | {w['window']['test_start_utc'][:10]} "
                f"| {w['rows']['test']} ({w['rows']['test_known_cards_excluded']}) "
                f"| {w['frauds']['test']} "
                f"| {ch['max_depth']} / {ch['n_estimators']} / {ch['learning_rate']:g} "
                f"| {fmt_number(w['validation_average_precision'])} "
                f"| {fmt_number(w['test']['average_precision'])} "
                f"| {fmt_number(w['defaults']['test']['average_precision'])} "
                f"| {fmt_number(best)} |")
    return "\n".join(lines)


def _handbook_rows(mix: str, fs: str, hb: Mapping[str, Any]) -> list[str]:
    p, summary = hb["protocol"], hb["summary"]
    how = (f"handbook {p['train_days']:g}/{p['delay_days']:g}/{p['test_days']:g} d "
           f"x{p['n_windows_fitted']}")
    d = hb["defaults"]
    return [f"| {mix} | {fs} | batch XGBoost | {how}, {label} "
            f"| {fmt_interval(m['average_precision'])} | {fmt_interval(m['roc_auc'])} "
            f"| {fmt_interval(m['card_precision_at_k'])} | | |"
            for label, m in (("tuned on validation", summary),
                             (f"trainer defaults {d['max_depth']}/{d['n_estimators']}/"
                              f"{d['learning_rate']:g}", summary["defaults"]))]
