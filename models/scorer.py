"""The scorer: per-model scores for a micro-batch, the final score, and a decision.

The online learner always scores. A batch model (the trainer's champion) can be plugged in
and swapped at any time with :meth:`Scorer.swap_batch`; a swap replaces one reference, so a
micro-batch is scored entirely by the model that was current when it started. A shadow model
is scored and reported but never decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

__all__ = ["BatchModel", "Thresholds", "ScoredBatch", "Scorer", "decide"]


class BatchModel(Protocol):
    """What the scorer needs from a batch model (e.g. the trainer's XGBoost)."""

    version: str
    feature_names: Sequence[str]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Fraud probability per row of ``X`` (columns in ``feature_names`` order)."""
        ...


class OnlineModel(Protocol):
    def predict_proba_many(self, X: list[dict[str, float]]) -> np.ndarray: ...


@dataclass(frozen=True)
class Thresholds:
    """Score cut-offs: ``review <= score < decline`` is review, ``>= decline`` declines."""

    review: float = 0.5
    decline: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.decline <= 1.0:
            raise ValueError(f"need 0 <= review <= decline <= 1, got {self.review}, {self.decline}")


def decide(scores: np.ndarray, thresholds: Thresholds) -> list[str]:
    """approve / review / decline per score."""
    return np.where(scores >= thresholds.decline, "decline",
                    np.where(scores >= thresholds.review, "review", "approve")).tolist()


@dataclass(frozen=True)
class ScoredBatch:
    scores: np.ndarray               # the deciding score, in [0, 1]
    per_model: dict[str, np.ndarray]  # "online", and "batch"/"shadow" when loaded
    decisions: list[str]
    model_version: str
    reasons: list[list[dict[str, float]]]  # per row: top features by contribution (may be empty)
    shadow_version: str | None = None        # the shadow model that scored, if any


class Scorer:
    """Scores micro-batches with the online learner and, when loaded, the batch champion."""

    def __init__(self, online: OnlineModel, thresholds: Thresholds = Thresholds(),
                 online_version: str = "online-v1") -> None:
        self.online = online
        self.thresholds = thresholds
        self.online_version = online_version
        self._batch: BatchModel | None = None
        self._shadow: BatchModel | None = None

    @property
    def batch(self) -> BatchModel | None:
        return self._batch

    @property
    def shadow(self) -> BatchModel | None:
        return self._shadow

    @property
    def model_version(self) -> str:
        """The version of the model whose score decides."""
        return self._batch.version if self._batch is not None else self.online_version

    def swap_batch(self, model: BatchModel | None) -> None:
        """Replace the deciding batch model (``None`` returns to the online learner)."""
        self._batch = model

    def swap_shadow(self, model: BatchModel | None) -> None:
        self._shadow = model

    def score(self, features: list[dict[str, float]]) -> ScoredBatch:
        """Score one micro-batch of feature dicts in vectorised calls."""
        batch, shadow = self._batch, self._shadow  # one model per batch, even across a swap
        per_model = {"online": np.clip(self.online.predict_proba_many(features), 0.0, 1.0)}
        final = per_model["online"]
        version = self.online_version
        if batch is not None:
            per_model["batch"] = np.clip(batch.predict_proba(_matrix(features, batch)), 0.0, 1.0)
            final = per_model["batch"]
            version = batch.version
        if shadow is not None:
            per_model["shadow"] = np.clip(shadow.predict_proba(_matrix(features, shadow)), 0.0, 1.0)
        explain = getattr(self.online, "explain_many", None)
        # Reasons come from the online model, the only one with an additive decomposition
        # here; a batch model can bring its own (e.g. XGBoost's pred_contribs) later.
        reasons = explain(features) if explain is not None else [[] for _ in features]
        return ScoredBatch(final, per_model, decide(final, self.thresholds), version, reasons,
                           shadow.version if shadow is not None else None)


def _matrix(features: list[dict[str, float]], model: BatchModel) -> np.ndarray:
    names = list(model.feature_names)
    return np.array([[f.get(n, 0.0) for n in names] for f in features], dtype=np.float64)
