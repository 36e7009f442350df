"""The online learner and its prequential quality, on river.

:class:`OnlineLearner` scores feature dicts and learns from labelled ones as labels arrive;
:class:`PrequentialMetrics` tracks how well the scores it gave *before* learning rank the
frauds, over a sliding window.

Choosing the default (issue 15), measured prequentially on the simulator with
models/online_eval.py (each transaction scored before its label; labels learned when they
would arrive, 7 days later; in fraud_only mode legitimate rows mature when their partition's
label watermark passes them, 8 partitions): ``fraudstream evaluate-detection --customers 2000
--days 50 --online binned,logreg:3 --seed S``, AP on the last 20 days (the batch model's
test window), extended features, seeds 0 and 1 (batch: XGBoost on the same features):

=========================  ============================  ============================
learner                    handbook mix, all/fraud_only  extended mix, all/fraud_only
=========================  ============================  ============================
binned (the default)       0.466/0.491, 0.412/0.407      0.600/0.611, 0.548/0.544
logreg, weight 3 (before)  0.449/0.471, 0.388/0.392      0.488/0.508, 0.456/0.445
batch XGBoost              0.532, 0.458                  0.654, 0.598
=========================  ============================  ============================

AP from the first label on (day 7), where the old set-up's slow start shows: binned
0.258/0.163, 0.409/0.370 (handbook mix) and 0.525/0.516, 0.528/0.475 (extended mix);
logreg 0.084/0.074, 0.245/0.061 and 0.201/0.117, 0.276/0.103. Why the old learner was weak:
on the handbook features it sat at the linear ceiling (an offline logistic regression on the
same features scored the same AP), and its SGD (step 0.01, fraud weight 3) needed weeks of
labels to get there; cards under attack (card testing, account takeover) only show in
features the handbook set does not have. In fraud_only mode a partition's legitimate
snapshots mature only when a fraud label reaches that partition (stream/joiner.py), so they
arrive late and in bursts; replayed with cards spread over 8 and 32 partitions (2,000
customers, 30 days, extended mix, AP from day 15), the old set-up fell from 0.423 (one
watermark) to 0.254 and 0.058, near random, while binned held 0.672, 0.670 and 0.658 (likely
because AdaGrad's steps shrink where constant SGD steps, weighted 3 on frauds, swing with
each burst; the mechanism is not measured).
Exploration on 1,000 customers (40 days): AdaGrad beat SGD at every step size tried
(0.01-0.2); log-scaled bins beat raw and log-only inputs; a fraud weight of 1 beat 3 under
the 10% under-sampler; river's ARF (5 trees, majority-class leaves) reached the same AP
(0.48 from the first label, extended mix) at ~3x the scoring and ~8x the learning cost;
Hoeffding trees (plain and adaptive) stayed far below (0.06-0.16). Imbalance devices skew
scores upwards: they rank, they are not calibrated probabilities, so decision thresholds
are set on observed scores.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from river import forest, imblearn, linear_model, optim, preprocessing, tree

from .online_binned import BinnedLogistic, _sigmoid, sigmoid_many
from .online_checkpoint import SIDECAR_SUFFIX, CheckpointError, load_checkpoint, save_checkpoint
from .online_explain import logreg_reasons, top_reasons_many
from .online_metrics import PrequentialMetrics


def _shifted(p: float, shift: float) -> float:
    """``p`` with ``shift`` added to its log-odds (NaN stays NaN, 0 and 1 stay put)."""
    if shift == 0.0 or not 0.0 < p < 1.0:
        return p
    return _sigmoid(math.log(p / (1.0 - p)) + shift)


__all__ = [
    "MODELS", "SAMPLERS", "SIDECAR_SUFFIX", "CheckpointError", "OnlineLearner",
    "PrequentialMetrics",
]

MODELS: tuple[str, ...] = ("binned", "logreg", "arf", "hoeffding")
SAMPLERS: tuple[str | None, ...] = ("under", None)

ModelName = Literal["binned", "logreg", "arf", "hoeffding"]
_LEARNING_RATES = {"binned": 0.05, "logreg": 0.01}  # AdaGrad's, SGD's


class OnlineLearner:
    """A river classifier of fraud (``True``) vs legitimate, learning one label at a time.

    Parameters
    ----------
    model
        ``"binned"`` (the default): a logistic regression (AdaGrad) on log-scaled,
        standardised features plus one-hot bins of them (models/online_binned.py);
        ``"logreg"``: ``StandardScaler | LogisticRegression`` (SGD) on the raw features;
        ``"hoeffding"``: a Hoeffding tree; ``"arf"``: an adaptive random forest (10 trees,
        slow: ~0.2 ms a score, ~0.7 ms a label).
    class_weight_fraud
        Sample weight of a fraud relative to a legitimate transaction. river's ARF takes
        no sample weights, so there a fraud is learned ``round(weight)`` times instead.
    sampler
        ``"under"``: under-sample legitimate transactions so the learner sees about
        ``fraud_share`` frauds; ``None``: learn every example.
    fraud_share
        Target fraud share of the under-sampler.
    learning_rate
        Step size of the regressions (``None``: 0.05 for ``"binned"``'s AdaGrad, 0.01 for
        ``"logreg"``'s SGD).
    seed
        The only source of randomness (sampler, forest): same seed, same stream, same model.
    max_abs_feature
        :meth:`learn_one` refuses an example with a feature value outside
        ``[-max_abs_feature, max_abs_feature]`` (NaN and infinities included). A single
        value of 1e300 makes the scaler's variance infinite and every later weight NaN; 1e12
        is far above any amount or count, and its square (the variance) stays finite.
        The sample weight of :meth:`learn_one` must lie in ``[0, max_abs_feature]``.

    Guarding the state
    ------------------
    No single example may change how every later one is scored, so :meth:`learn_one`
    refuses (returns ``False``, counts :attr:`n_refused`) an example that is not finite,
    too large or has a non-numeric value, before the model or the sampler sees it. For the
    logistic regression it also checks the state after learning (scaler means and
    variances, weights, intercept) and, if any is not finite (or learning raised an
    ``ArithmeticError``), puts back the previous state exactly, the sampler's class counts
    included, but not the sampler's random stream, which keeps the draw it made: restoring
    it would cost ``Random.getstate()`` (~8 us) on every call, and the learner stays a
    deterministic function of seed and stream. The guard costs ~2 us a call. The
    trees are guarded by the input check alone: with inputs bounded by ``max_abs_feature``
    (keep it near the default for them) their statistics (counts, means and variances of
    bounded values) stay finite, while restoring a tree would take a deepcopy per example.

    >>> learner = OnlineLearner(seed=1)
    >>> learner.learn_one({"amount": 900.0, "night": 1.0}, True)
    True
    >>> learner.learn_one({"amount": 12.0, "night": 0.0}, False)
    True
    >>> learner.learn_one({"amount": float("nan"), "night": 0.0}, True)
    False
    >>> learner.n_learned, learner.n_refused
    (2, 1)
    >>> p = learner.predict_proba_many([{"amount": 900.0, "night": 1.0}])
    >>> p.shape, bool(0.0 <= p[0] <= 1.0)
    ((1,), True)
    """

    def __init__(
        self,
        model: ModelName = "binned",
        class_weight_fraud: float = 1.0,
        sampler: str | None = "under",
        fraud_share: float = 0.1,
        learning_rate: float | None = None,
        seed: int = 0,
        max_abs_feature: float = 1e12,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if not (class_weight_fraud > 0 and math.isfinite(class_weight_fraud)):
            raise ValueError("class_weight_fraud must be a positive number")
        if not 0.0 < fraud_share < 1.0:
            raise ValueError("fraud_share must be in (0, 1)")
        if not (max_abs_feature > 0 and math.isfinite(max_abs_feature)):
            raise ValueError("max_abs_feature must be a positive finite number")
        self.model = model
        self.class_weight_fraud = class_weight_fraud
        self.sampler = sampler
        self.fraud_share = fraud_share
        self.learning_rate = (_LEARNING_RATES.get(model, 0.01) if learning_rate is None
                              else learning_rate)
        self.seed = seed
        self.max_abs_feature = max_abs_feature
        # Where it stands in streams it learns from besides labels ({source: next position}),
        # saved with its weights: a restored learner resumes them, learning nothing twice.
        self.positions: dict[str, int] = {}

        # _predictor scores; _learner is what examples are fed to (the sampler wraps the
        # predictor, so both see the same model).
        self._predictor: Any = self._build_model()
        self._learner: Any = self._predictor
        self._sampler: Any = None
        if sampler == "under":
            self._learner = self._sampler = imblearn.RandomUnderSampler(
                self._predictor,
                desired_dist={False: 1.0 - fraud_share, True: fraud_share},
                seed=seed,
            )
        # The regressions' numeric state, checked after each example.
        self._scaler: Any = None
        self._logreg: Any = None
        if model == "logreg":
            self._scaler = self._predictor["StandardScaler"]
            self._logreg = self._predictor["LogisticRegression"]
        elif model == "binned":
            self._scaler, self._logreg = self._predictor.scaler, self._predictor.logreg
        self._n_learned = 0
        self._n_refused = 0
        # The last batch scored by "binned", its state's version and its (logit, terms):
        # the scorer asks for the reasons of the batch it has just scored.
        self._last_terms: tuple[Any, int, tuple[np.ndarray, list[str], np.ndarray]] | None = None

    def _build_model(self) -> Any:
        if self.model == "binned":
            return BinnedLogistic(learning_rate=self.learning_rate)
        if self.model == "logreg":
            return preprocessing.StandardScaler() | linear_model.LogisticRegression(
                optimizer=optim.SGD(self.learning_rate)
            )
        if self.model == "hoeffding":
            return tree.HoeffdingTreeClassifier()
        return forest.ARFClassifier(n_models=10, seed=self.seed)

    @property
    def n_learned(self) -> int:
        """Labelled examples :meth:`learn_one` accepted (before under-sampling)."""
        return self._n_learned

    @property
    def n_refused(self) -> int:
        """Labelled examples :meth:`learn_one` refused (non-finite, too large, or poisoning)."""
        return self._n_refused

    def state_is_finite(self) -> bool:
        """Whether the numeric state is finite: always ``True`` for the trees (see the class)."""
        if self._scaler is None:
            return True
        scaler, logreg = self._scaler, self._logreg
        return math.isfinite(logreg.intercept) and all(
            map(math.isfinite, (*scaler.means.values(), *scaler.vars.values(),
                                *logreg._weights.values(), *_accumulators(logreg).values()))
        )

    def _prior_shift(self) -> float:
        """Log-odds to add to a score learned under the under-sampler: back to the real prior.

        The model learns from legitimate examples kept at rate ``k_legit`` and frauds at
        ``k_fraud``; its odds are the true odds times ``k_fraud / k_legit``. Without this a
        learner trained at a 10 % fraud share scored a quarter of a demo's transactions above
        the review threshold (measured: 14,383 reviews of 56,835 before the first champion).
        Ranking (AP) is unchanged; decisions use calibrated probabilities.
        """
        sampler = self._sampler
        if sampler is None:
            return 0.0
        seen, kept = sampler._actual_dist, sampler._trained_on_dist
        if not (seen[False] and kept[False] and seen[True] and kept[True]):
            return 0.0
        return math.log((kept[False] / seen[False]) / (kept[True] / seen[True]))

    def predict_proba_one(self, x: Mapping[str, float]) -> float:
        """P(fraud) for one feature dict.

        ``nan`` when ``x`` holds values the model cannot score (NaN, or infinities that
        cancel); the scorer decides ``review`` for those, never ``approve``.
        """
        return _shifted(float(self._predictor.predict_proba_one(x).get(True, 0.0)),
                        self._prior_shift())

    def predict_proba_many(self, X: Sequence[Mapping[str, float]]) -> np.ndarray:
        """P(fraud) for a batch of feature dicts, as a float64 array of ``len(X)``.

        One ``predict_proba_one`` per row, for every model: river's vectorised logistic
        regression builds a DataFrame first, which cost ~0.8 ms a call whatever the size,
        while the per-row path costs ~3 us a row (StandardScaler | LogisticRegression, 15
        features), so the loop is faster up to a few hundred rows, the size of a live batch.
        """
        if self.model == "binned":
            terms = self._predictor.terms_many(X)
            self._last_terms = (X, self._n_learned + self._n_refused, terms)
            return sigmoid_many(terms[0] + self._prior_shift())
        return np.fromiter((self.predict_proba_one(x) for x in X), dtype=np.float64, count=len(X))

    def explain_many(self, X: Sequence[Mapping[str, float]], top: int = 3
                     ) -> list[list[dict[str, float]]]:
        """The ``top`` features that pushed each score up most (the regressions only).

        A feature's contribution is its additive share of the logit: its weight times its
        standardised value (plus, for ``"binned"``, the weight of its bin). Trees have no
        such decomposition; they return empty lists.
        Non-finite values or contributions are left out (they cannot go on the wire).
        """
        if self.model == "binned" and X:
            cached = self._last_terms
            if (cached is not None and cached[0] is X
                    and cached[1] == self._n_learned + self._n_refused):
                _, names, contrib = cached[2]  # the batch just scored, by the same state
            else:
                _, names, contrib = self._predictor.terms_many(X)
            return top_reasons_many(X, names, contrib, top)
        if self.model != "logreg" or not X:
            return [[] for _ in X]
        return logreg_reasons(self._scaler, self._logreg, X, top)

    def _acceptable(self, x: Mapping[str, float], weight: float) -> bool:
        """Every value (and the weight) a finite number within ``max_abs_feature``."""
        m = self.max_abs_feature
        try:
            if not 0.0 <= weight <= m:  # also False for NaN
                return False
            for v in x.values():
                if not -m <= v <= m:
                    return False
        except (TypeError, ValueError):  # None, strings, arrays: nothing to learn from
            return False
        return True

    def learn_one(self, x: Mapping[str, float], y: bool, weight: float = 1.0) -> bool:
        """Learn one labelled example; ``weight`` multiplies the class weight.

        Returns ``True`` if it was learned (or offered to the under-sampler, which may skip
        it), ``False`` if it was refused and the learner left as it was (see the class
        docstring): a value or weight that is not a finite number within
        ``max_abs_feature``, or an update that would make the state non-finite.
        """
        if not self._acceptable(x, weight):
            self._n_refused += 1
            return False
        y = bool(y)
        w = weight * (self.class_weight_fraud if y else 1.0)
        if self._scaler is not None:
            if not self._learn_guarded(x, y, w):
                self._n_refused += 1
                return False
        elif self.model == "arf":
            # ARF draws its own Poisson weights and ignores `w`: repeat instead.
            for _ in range(max(1, round(w))):
                self._learner.learn_one(x, y)
        else:
            self._learner.learn_one(x, y, w=w)
        self._n_learned += 1
        return True

    def _learn_guarded(self, x: Mapping[str, float], y: bool, w: float) -> bool:
        """Learn (logistic regression), or restore the state before it if it went non-finite.

        The snapshot is shallow copies of the scaler's three small dicts, the weights and
        AdaGrad's accumulators, plus a few scalars: a few us, where a deepcopy of the model
        is ~100x that.
        """
        scaler, logreg, sampler = self._scaler, self._logreg, self._sampler
        counts, means, vars_ = dict(scaler.counts), dict(scaler.means), dict(scaler.vars)
        weights, intercept = copy.copy(logreg._weights), logreg.intercept
        accumulators = _accumulators(logreg)
        saved_accumulators = dict(accumulators)
        n_iterations = logreg.optimizer.n_iterations
        if sampler is not None:
            # Counter lookups do not insert missing keys; learn_one may.
            seen, trained = sampler._actual_dist[y], sampler._trained_on_dist[y]
            pivot = sampler._pivot
        try:
            self._learner.learn_one(x, y, w=w)
        except ArithmeticError:  # e.g. an OverflowError half-way: undo what was done
            pass
        else:
            if logreg.optimizer.n_iterations == n_iterations:
                return True  # the sampler skipped it: nothing changed
            # A sum is finite only if every term is; a non-finite sum may still be an
            # overflow of finite terms, which the exact check tells apart.
            total = (sum(scaler.means.values()) + sum(scaler.vars.values())
                     + sum(logreg._weights.values()) + logreg.intercept
                     + sum(accumulators.values()))
            if math.isfinite(total) or self.state_is_finite():
                return True
        for live, saved in ((scaler.counts, counts), (scaler.means, means), (scaler.vars, vars_),
                            (accumulators, saved_accumulators)):
            live.clear()
            dict.update(live, saved)  # keeps the Counter / defaultdict and its factory
        logreg._weights, logreg.intercept = weights, intercept
        logreg.optimizer.n_iterations = n_iterations
        if sampler is not None:
            for dist, n in ((sampler._actual_dist, seen), (sampler._trained_on_dist, trained)):
                if n:
                    dist[y] = n
                else:
                    dist.pop(y, None)
            sampler._pivot = pivot
        return False

    def learn_many(
        self,
        X: Sequence[Mapping[str, float]],
        y: Sequence[bool],
        weights: Sequence[float] | None = None,
    ) -> int:
        """Learn a batch, in order, exactly as that many :meth:`learn_one` calls.

        Returns how many were learned (the rest were refused, see :meth:`learn_one`).
        river's mini-batch ``learn_many`` takes one averaged gradient step per batch, i.e.
        learns about batch-size times slower under SGD; labels are off the scoring hot path,
        so sequential learning is the better trade.
        """
        if len(X) != len(y) or (weights is not None and len(weights) != len(X)):
            raise ValueError("X, y and weights must have the same length")
        learned = 0
        for i, (x, yi) in enumerate(zip(X, y)):
            learned += self.learn_one(x, yi, 1.0 if weights is None else weights[i])
        return learned

    def save(self, path: str | os.PathLike[str]) -> None:
        """Checkpoint to ``path``, with its checksum in ``<path>.sha256``, crash-safely.

        Refuses (``ValueError``) a learner whose state is not finite: the last good
        checkpoint stays in place. The format is pickle, which runs code when loaded, so
        :meth:`load` unpickles only bytes whose sha256 the sidecar lists; the protocol is
        in models/online_checkpoint.py.
        """
        if not self.state_is_finite():
            raise ValueError("refusing to checkpoint an online learner whose state is not finite")
        save_checkpoint(path, self)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OnlineLearner:
        """Restore a learner written by :meth:`save`, verified before it is unpickled.

        Raises :class:`CheckpointError` (the caller starts a fresh learner) when the sidecar
        ``<path>.sha256`` is missing (as for checkpoints written before format v2) or
        malformed, when it does not list the sha256 of the checkpoint's bytes (both checked
        before unpickling), or when the unpickled content is not a finite learner of this
        format. ``FileNotFoundError`` when there is no checkpoint at all.
        """
        path = os.fspath(path)
        learner = load_checkpoint(path)
        if not isinstance(learner, cls):
            raise CheckpointError(f"{path!r} holds a {type(learner).__name__}")
        if not learner.state_is_finite():
            raise CheckpointError(f"{path!r} holds a learner whose state is not finite")
        return learner

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_last_terms"] = None  # a cache of the last batch: not part of the model
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_last_terms", None)
        self.__dict__.setdefault("positions", {})  # a checkpoint from before positions

    def __repr__(self) -> str:
        return (
            f"OnlineLearner(model={self.model!r}, class_weight_fraud={self.class_weight_fraud}, "
            f"sampler={self.sampler!r}, seed={self.seed}, n_learned={self._n_learned}, "
            f"n_refused={self._n_refused})"
        )


def _accumulators(logreg: Any) -> dict[Any, float]:
    """The optimiser's per-weight state (AdaGrad's squared-gradient sums; SGD has none)."""
    return getattr(logreg.optimizer, "g2", _NO_ACCUMULATORS)


_NO_ACCUMULATORS: dict[Any, float] = {}
