"""The scorer: per-model scores for a micro-batch, the final score, and a decision.

The online learner always scores. A batch model (XGBoost, trained by the trainer) can be plugged in
as the champion and swapped at any time with :meth:`Scorer.swap_champion`; a swap replaces one reference, so a
micro-batch is scored entirely by the model that was current when it started. A shadow model
is scored and reported but never decides.

Fail safe: a score that is not finite never becomes ``approve``. Per row, the champion's
score decides if it is finite, else the online learner's, else nobody's: the row gets
``review`` (and the score ``thresholds.review``, so score and decision agree). A model that
raises counts as "not finite" for the rows it was asked about. Which rows fell back, and
why, is in :attr:`ScoredBatch.fallbacks`; the exceptions in :attr:`ScoredBatch.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

__all__ = [
    "BatchModel", "fallback_class", "FALLBACK_CHAMPION_FAILED", "FALLBACK_ONLINE", "FALLBACK_REVIEW", "Thresholds",
    "ScoredBatch", "Scorer", "decide",
]

# The reasons in ScoredBatch.fallbacks: a small fixed set, fit for a metric label.
FALLBACK_ONLINE = "champion score not finite; online learner decided"
FALLBACK_CHAMPION_FAILED = "champion failed; online learner decided"
FALLBACK_REVIEW = "no finite score; review"
_FALLBACK_CLASSES = {FALLBACK_ONLINE: "champion_failed", FALLBACK_CHAMPION_FAILED: "champion_failed",
                     FALLBACK_REVIEW: "no_finite_score"}


def fallback_class(fallback: str) -> str:
    """A fallback reason's class (``champion_failed``, ``no_finite_score``, ``scoring_error``)."""
    return _FALLBACK_CLASSES.get(fallback, "scoring_error")



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
    """approve / review / decline per score; a score that is not finite is ``review``.

    >>> decide(np.array([0.1, 0.7, 0.95, np.nan, -np.inf]), Thresholds())
    ['approve', 'review', 'decline', 'review', 'review']
    """
    scores = np.asarray(scores)
    return np.where(
        ~np.isfinite(scores), "review",
        np.where(scores >= thresholds.decline, "decline",
                 np.where(scores >= thresholds.review, "review", "approve"))).tolist()


@dataclass(frozen=True)
class ScoredBatch:
    """A scored micro-batch; all lists and arrays have one entry per row.

    ``model_version`` is the micro-batch's nominal deciding model (the champion when one is
    loaded); ``versions`` is the model that decided each row, which differs where the online
    learner stood in for the champion (``fallbacks`` says so). A row no model could score
    keeps the nominal version. Put ``versions[i]`` on the wire.
    """

    scores: np.ndarray               # the deciding score, finite, in [0, 1]
    per_model: dict[str, np.ndarray]  # "online", "batch" (the champion), "shadow"; NaN: no score
    decisions: list[str]
    model_version: str
    reasons: list[list[dict[str, float]]]  # per row: top features by contribution (may be empty)
    shadow_version: str | None = None        # the shadow model that scored, if any
    fallbacks: list[str | None] = None  # type: ignore[assignment]  # None: the normal model decided
    versions: list[str] = None  # type: ignore[assignment]  # the model whose score decided
    errors: dict[str, str] = field(default_factory=dict)  # role -> exception that role raised

    def __post_init__(self) -> None:
        n = len(self.decisions)
        if self.fallbacks is None:
            object.__setattr__(self, "fallbacks", [None] * n)
        if self.versions is None:
            object.__setattr__(self, "versions", [self.model_version] * n)


class Scorer:
    """Scores micro-batches with the online learner and, when loaded, the champion."""

    def __init__(self, online: OnlineModel, thresholds: Thresholds = Thresholds(),
                 online_version: str = "online-v1") -> None:
        self.online = online
        self.thresholds = thresholds
        self.online_version = online_version
        self._champion: BatchModel | None = None
        self._shadow: BatchModel | None = None

    @property
    def champion(self) -> BatchModel | None:
        return self._champion

    @property
    def shadow(self) -> BatchModel | None:
        return self._shadow

    @property
    def model_version(self) -> str:
        """The version of the model whose score decides (when it can score)."""
        return self._champion.version if self._champion is not None else self.online_version

    def swap_champion(self, model: BatchModel | None) -> None:
        """Replace the deciding model, the champion (``None`` returns to the online learner)."""
        self._champion = model

    def swap_shadow(self, model: BatchModel | None) -> None:
        self._shadow = model

    def score(self, features: list[dict[str, float]]) -> ScoredBatch:
        """Score one micro-batch of feature dicts (each model sees the whole micro-batch).

        The online learner scores row by row (models/online.py), the champion in one call.
        When every deciding score is finite this costs a few vectorised ``isfinite`` checks;
        the per-row fall-back work runs only for the other rows.
        """
        # One model per role for the whole micro-batch, even across a swap.
        champion, shadow = self._champion, self._shadow
        n = len(features)
        errors: dict[str, str] = {}
        online, online_ok = self._online_scores(features, errors)
        per_model = {"online": online}
        final, ok, version = online, online_ok, self.online_version
        champion_failed = False
        if champion is not None:
            version = champion.version
            try:
                final, ok = _unit(champion.predict_proba(_matrix(features, champion)), n)
            except Exception as e:  # a broken champion: the online learner stands in
                errors["champion"] = _describe(e)
                final, ok, champion_failed = np.full(n, np.nan), np.zeros(n, dtype=bool), True
            per_model["batch"] = final
        if shadow is not None:
            try:
                per_model["shadow"], _ = _unit(shadow.predict_proba(_matrix(features, shadow)), n)
            except Exception as e:  # never decides: report it and carry on
                errors["shadow"] = _describe(e)
                per_model["shadow"] = np.full(n, np.nan)
        fallbacks: list[str | None] = [None] * n
        versions = [version] * n
        if ok is not None:  # some deciding score is not finite
            final = self._fall_back(final, ok, online, online_ok, champion is not None,
                                    champion_failed, fallbacks, versions)
        try:
            explain = getattr(self.online, "explain_many", None)
            # Reasons come from the online model, the only one with an additive decomposition
            # here; a batch model can bring its own (e.g. XGBoost's pred_contribs) later.
            reasons = explain(features) if explain is not None else [[] for _ in features]
        except Exception as e:  # reasons are a courtesy: the decision stands without them
            errors["reasons"] = _describe(e)
            reasons = [[] for _ in features]
        return ScoredBatch(final, per_model, decide(final, self.thresholds), version, reasons,
                           shadow.version if shadow is not None else None,
                           fallbacks, versions, errors)

    def _online_scores(self, features: list[dict[str, float]], errors: dict[str, str]
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """The online scores (NaN where it cannot score) and the finite mask (``None``: all)."""
        n = len(features)
        try:
            return _unit(self.online.predict_proba_many(features), n)
        except Exception as e:
            errors["online"] = _describe(e)
        # Find the rows that raise: only they lose their online score.
        raw = np.full(n, np.nan)
        for i, x in enumerate(features):
            try:
                raw[i] = float(self.online.predict_proba_many([x])[0])
            except Exception:  # noqa: S112 - counted: the row is NaN, errors["online"] says why
                continue
        return _unit(raw, n)

    def _fall_back(self, final: np.ndarray, ok: np.ndarray, online: np.ndarray,
                   online_ok: np.ndarray | None, has_champion: bool, champion_failed: bool,
                   fallbacks: list[str | None], versions: list[str]) -> np.ndarray:
        """``final`` with its non-finite rows filled from the online learner, else review."""
        final = final.copy()
        bad = np.flatnonzero(~ok)
        if has_champion:
            by_online = bad if online_ok is None else bad[online_ok[bad]]
            final[by_online] = online[by_online]
            reason = FALLBACK_CHAMPION_FAILED if champion_failed else FALLBACK_ONLINE
            for i in by_online.tolist():
                fallbacks[i], versions[i] = reason, self.online_version
            bad = np.setdiff1d(bad, by_online, assume_unique=True)
        # No finite score: thresholds.review makes decide() say review (or decline when
        # review == decline, a configuration without a review band), never approve.
        final[bad] = self.thresholds.review
        for i in bad.tolist():
            fallbacks[i] = FALLBACK_REVIEW
        return final


def _unit(raw: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores clipped to [0, 1] with non-finite ones as NaN (clipping would turn -inf into
    an approvable 0), and the finite mask, ``None`` when all are finite (the common case)."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape != (n,):
        raise ValueError(f"expected {n} scores, got an array of shape {raw.shape}")
    ok = np.isfinite(raw)
    if ok.all():
        return np.clip(raw, 0.0, 1.0), None
    return np.clip(np.where(ok, raw, np.nan), 0.0, 1.0), ok


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:200]


def _matrix(features: list[dict[str, float]], model: BatchModel) -> np.ndarray:
    names = list(model.feature_names)
    return np.array([[f.get(n, 0.0) for n in names] for f in features], dtype=np.float64)
