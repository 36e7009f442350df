"""The records the scoring path builds, one typed definition each.

A transaction becomes, in order:

1. :class:`Featurised` (the feature stage, stream/stages.py): the validated transaction with
   its complete feature vector, in memory only;
2. a score record for the ``scores`` topic (:func:`score_record`, docs/contract.md) and a
   :class:`Snapshot` for the label join (``pending-snapshots`` table, stream/joiner.py);
3. once its label meets the snapshot, a :class:`TrainingExample` for the
   ``training-examples`` topic (:func:`training_example`), which the trainer reads.

Snapshots and training examples are dicts on the wire and in RocksDB (JSON), so they are
``TypedDict``s: the keys are agreed here, not between app.py, joiner.py and the trainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypedDict

import orjson

from ..models.scorer import ScoredBatch
from .announce import feature_problem
from .contract import parse_ts

__all__ = ["Featurised", "Snapshot", "TrainingExample", "score_record", "snapshot",
           "training_example", "decode_snapshots", "SNAPSHOTS_PER_RECORD"]

#: Snapshots per record of the snapshots topic (~1 KB each: well inside a producer batch).
SNAPSHOTS_PER_RECORD = 100


@dataclass(frozen=True, slots=True)
class Featurised:
    """A valid transaction with its features, ready to score."""

    tx_id: str
    card_id: str
    terminal_id: str
    ts: float  # event time, epoch seconds
    arrived: float  # the record's Kafka timestamp, seconds (the latency histogram's start)
    features: dict[str, float]
    partition: int  # of ``transactions``: the card's partition in every co-partitioned topic


class Snapshot(TypedDict):
    """What the transaction looked like at scoring time, waiting for its label."""

    tx_id: str
    card_id: str
    terminal_id: str
    event_ts: float
    features: dict[str, float]
    score_online: float | None
    scores: dict[str, float]  # per model role (online, batch, shadow), finite ones only
    model_version: str
    shadow_version: str | None


class TrainingExample(TypedDict):
    """A labelled snapshot, as the trainer reads it (schemas/training-examples.json)."""

    tx_id: str
    card_id: str
    event_ts: float
    features: dict[str, float]
    is_fraud: bool
    label_ts: float
    label_source: str  # see the schema's enum
    model_version: str
    scores: dict[str, float]
    shadow_version: str | None


def finite_scores(scored: ScoredBatch, i: int) -> dict[str, float]:
    """Row ``i``'s per-model scores; a non-finite one is left out (the wire carries numbers)."""
    return {k: float(v[i]) for k, v in scored.per_model.items() if math.isfinite(v[i])}


def score_record(rec: Featurised, scored: ScoredBatch, i: int, per_model: dict[str, float],
                 now: float) -> dict[str, Any]:
    """Row ``i`` of a scored batch as its ``scores`` record; ``fallback`` says which model could not score."""
    value: dict[str, Any] = {
        "tx_id": rec.tx_id, "card_id": rec.card_id, "score": float(scored.scores[i]),
        "decision": scored.decisions[i], "model_version": scored.versions[i],
        "event_ts": rec.ts, "scored_at": now, "models": per_model,
        "reasons": scored.reasons[i],
    }
    if scored.fallbacks[i] is not None:
        value["fallback"] = scored.fallbacks[i]
    if scored.shadow_version is not None:
        value["shadow_version"] = scored.shadow_version
    return value


def snapshot(rec: Featurised, scored: ScoredBatch, per_model: dict[str, float]) -> Snapshot:
    return Snapshot(tx_id=rec.tx_id, card_id=rec.card_id, terminal_id=rec.terminal_id,
                    event_ts=rec.ts, features=rec.features,
                    score_online=per_model.get("online"), scores=per_model,
                    model_version=scored.model_version, shadow_version=scored.shadow_version)


def decode_snapshots(value: bytes | None, max_abs: float
                     ) -> tuple[list[Snapshot], str | None]:
    """A snapshots-topic record's snapshots, and what was wrong with it (None: nothing).

    The topic is internal (our scoring processes write it), but what it holds is learned and
    sent to the trainer, so nothing is taken on trust: a record that is not a JSON list, or an
    entry with a missing or odd field or a feature that is not a finite number within
    ``max_abs``, is left out and described; the record's other entries still join.
    """
    try:
        items = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError as exc:
        return [], f"not JSON ({exc})"
    if not isinstance(items, list):
        return [], f"not a JSON list of snapshots but {type(items).__name__}"
    good: list[Snapshot] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        problem = _snapshot_problem(item, max_abs)
        if problem is None:
            good.append(item)
        else:
            problems.append(f"entry {i}: {problem}")
    if not problems:
        return good, None
    return good, f"{len(problems)} of {len(items)} snapshots left out ({'; '.join(problems[:3])})"


def _snapshot_problem(item: Any, max_abs: float) -> str | None:
    if not isinstance(item, dict):
        return "not an object"
    for key in ("tx_id", "card_id", "terminal_id", "model_version"):
        if not isinstance(item.get(key), str) or not item[key]:
            return f"{key} is not a non-empty string"
    ts = item.get("event_ts")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        return "event_ts is not a number"
    try:
        parse_ts(ts)  # the contract's one rule for an event time
    except ValueError as exc:
        return f"event_ts: {exc}"
    if not isinstance(item.get("shadow_version"), (str, type(None))):
        return "shadow_version is not a string or null"
    for key in ("features", "scores"):
        values = item.get(key)
        if not isinstance(values, dict):
            return f"{key} is not an object of finite numbers"
        # the same check as a synthetic fraud's features get (any names here)
        problem = feature_problem(values, None, max_abs)
        if problem is not None:
            return f"{key}: {problem[1]}"
    online = item.get("score_online")
    if online is not None and (feature_problem({"score_online": online}, None, 1.0)
                               or online < 0):
        return "score_online is not a number in [0, 1] or null"
    return None


def snapshot_scores(snap: dict[str, Any]) -> dict[str, float]:
    """A snapshot's per-model scores (older snapshots carry only ``score_online``)."""
    online = snap.get("score_online")
    return snap.get("scores") or ({"online": online} if online is not None else {})


def training_example(snap: dict[str, Any], is_fraud: bool, label_ts: float,
                     source: str) -> TrainingExample:
    return TrainingExample(tx_id=snap["tx_id"], card_id=snap["card_id"],
                           event_ts=snap["event_ts"], features=snap["features"],
                           is_fraud=is_fraud, label_ts=label_ts, label_source=source,
                           model_version=snap["model_version"], scores=snapshot_scores(snap),
                           shadow_version=snap.get("shadow_version"))
