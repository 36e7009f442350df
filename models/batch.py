"""The batch model: an XGBoost classifier trained by the trainer, scored by the workers.

"Batch" as in batch learning (fitted on a whole training window at once, then replaced by
the next refresh's champion), against the online learner that learns one label at a time;
not the workers' micro-batches of transactions. The augmentation study
(``models/evaluation.py``) trains its classifiers with the same :meth:`XGBoostModel.train`.

Serialised in XGBoost's own UBJSON format (never pickle), so an artifact is data, not code.
Satisfies the scorer's ``BatchModel`` protocol: ``version``, ``feature_names`` and
``predict_proba(X)`` with columns in ``feature_names`` order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import xgboost as xgb

__all__ = ["XGBoostModel", "XGBParams"]


@dataclass(frozen=True)
class XGBParams:
    """The classifier's settings: ``n_estimators`` boosting rounds of trees ``max_depth`` deep,
    ``n_jobs`` threads; ``scale_pos_weight`` multiplies the frauds' weight (1: none)."""

    n_estimators: int = 300
    max_depth: int = 5
    learning_rate: float = 0.1
    n_jobs: int = 1
    seed: int = 0
    scale_pos_weight: float = 1.0

    def booster_params(self) -> dict[str, object]:
        return {
            "objective": "binary:logistic",
            "eval_metric": "aucpr",
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "tree_method": "hist",
            "nthread": self.n_jobs,
            "seed": self.seed,
            "scale_pos_weight": self.scale_pos_weight,
        }


class _EveryRound(xgb.callback.TrainingCallback):
    """Calls ``check()`` after each boosting round; an exception from it aborts training."""

    def __init__(self, check: Callable[[], None]) -> None:
        super().__init__()
        self._check = check

    def after_iteration(self, model, epoch, evals_log) -> bool:  # noqa: ANN001 - xgboost's API
        self._check()
        return False


class XGBoostModel:
    """A fitted booster with the ordered feature names it expects and a version id."""

    def __init__(self, booster: xgb.Booster, feature_names: Sequence[str],
                 version: str = "unversioned") -> None:
        n = booster.num_features()
        if n != len(feature_names):
            raise ValueError(f"the booster expects {n} features, {len(feature_names)} names given")
        self.booster = booster
        self.feature_names = list(feature_names)
        self.version = version

    @classmethod
    def train(cls, X: np.ndarray, y: np.ndarray, feature_names: Sequence[str],
              params: XGBParams = XGBParams(), *, check: Callable[[], None] | None = None,
              version: str = "unversioned") -> XGBoostModel:
        """Fit on ``X`` (rows x ``feature_names``) and 0/1 labels ``y``.

        ``check`` runs after every boosting round (the trainer's deadline: raising there
        stops the fit, so a cycle's time limit holds inside XGBoost too).
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(feature_names) or y.shape != (len(X),):
            raise ValueError(f"X {X.shape} / y {y.shape} do not match {len(feature_names)} features")
        if not 0 < y.sum() < len(y):
            raise ValueError("need both classes to train")
        dtrain = xgb.DMatrix(X, label=y, nthread=params.n_jobs)
        callbacks = [_EveryRound(check)] if check is not None else None
        booster = xgb.train(params.booster_params(), dtrain, num_boost_round=params.n_estimators,
                            callbacks=callbacks)
        return cls(booster, feature_names, version)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Fraud probability per row."""
        X = np.asarray(X, dtype=np.float64)
        if len(X) == 0:
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.booster.inplace_predict(X), dtype=np.float64)

    def to_bytes(self) -> bytes:
        """The booster in XGBoost's UBJSON format."""
        return bytes(self.booster.save_raw(raw_format="ubj"))

    @classmethod
    def from_bytes(cls, data: bytes, feature_names: Sequence[str], version: str,
                   n_jobs: int = 1, *, sha256: str) -> XGBoostModel:
        """Rebuild from :meth:`to_bytes`, after checking ``data`` against its ``sha256``.

        The checksum is not optional: XGBoost's UBJSON reader has no integrity check of its
        own, and some damaged inputs crash the process (an empty buffer aborts it, about one
        flipped byte in five segfaults it) instead of raising. So nothing reaches the reader
        unless it is exactly the bytes that were written. Raises ``ValueError``.
        """
        data = bytes(data)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ValueError(f"model bytes do not match their sha256 ({actual[:12]}… != {sha256[:12]}…)")
        if data[:1] != b"{":
            raise ValueError("not an XGBoost model: UBJSON starts with '{'")
        booster = xgb.Booster(params={"nthread": n_jobs})
        try:
            booster.load_model(bytearray(data))
        except (xgb.core.XGBoostError, UnicodeDecodeError) as exc:
            raise ValueError(f"not an XGBoost model: {str(exc).splitlines()[0]}") from None
        return cls(booster, feature_names, version)

    def with_version(self, version: str) -> XGBoostModel:
        return XGBoostModel(self.booster, self.feature_names, version)

    def __repr__(self) -> str:
        return f"XGBoostModel(version={self.version!r}, features={len(self.feature_names)})"
