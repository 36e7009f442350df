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
import hashlib
import math
import os
import pickle
import tempfile
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from river import forest, imblearn, linear_model, optim, preprocessing, tree

from .durable import fsync_dir
from .online_binned import BinnedLogistic, _sigmoid


def _shifted(p: float, shift: float) -> float:
    """``p`` with ``shift`` added to its log-odds (NaN stays NaN, 0 and 1 stay put)."""
    if shift == 0.0 or not 0.0 < p < 1.0:
        return p
    return _sigmoid(math.log(p / (1.0 - p)) + shift)

__all__ = ["MODELS", "SAMPLERS", "CheckpointError", "OnlineLearner", "PrequentialMetrics"]

MODELS: tuple[str, ...] = ("binned", "logreg", "arf", "hoeffding")
SAMPLERS: tuple[str | None, ...] = ("under", None)

# v2: learners carry the finiteness guard's state; every checkpoint has a sha256 sidecar.
_CHECKPOINT_VERSION = 2
SIDECAR_SUFFIX = ".sha256"

ModelName = Literal["binned", "logreg", "arf", "hoeffding"]
_LEARNING_RATES = {"binned": 0.05, "logreg": 0.01}  # AdaGrad's, SGD's


class CheckpointError(ValueError):
    """A checkpoint :meth:`OnlineLearner.load` will not use; the caller starts a fresh learner.

    Raised before unpickling when the checksum sidecar is missing, malformed or does not
    vouch for the checkpoint's bytes, and after unpickling when the content is not a
    learner of this format or its numeric state is not finite.
    """


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
        self._last_terms: tuple[Any, int, list[tuple[float, dict[str, float]]]] | None = None

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
            terms = [self._predictor.terms_one(x) for x in X]
            self._last_terms = (X, self._n_learned + self._n_refused, terms)
            shift = self._prior_shift()
            return np.fromiter((_sigmoid(t[0] + shift) for t in terms), dtype=np.float64,
                               count=len(X))
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
                terms = cached[2]  # the batch just scored, by the same state
            else:
                terms = [self._predictor.terms_one(x) for x in X]
            return [_top(x, t[1], top) for x, t in zip(X, terms)]
        if self.model != "logreg" or not X:
            return [[] for _ in X]
        scaler, logreg = self._scaler, self._logreg
        cols = list(X[0])
        weights = np.array([logreg.weights.get(c, 0.0) for c in cols])
        means = np.array([scaler.means.get(c, 0.0) for c in cols])
        stds = np.sqrt(np.array([scaler.vars.get(c, 0.0) for c in cols]))
        raw = np.array([[x[c] for c in cols] for x in X], dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN or huge rows: zeroed below
            scaled = np.divide(raw - means, stds, out=np.zeros_like(raw), where=stds > 0)
            contrib = scaled * weights
        finite = np.isfinite(contrib)
        if not finite.all():
            # Never shown nor ranked. A finite non-zero contribution implies a finite value.
            contrib = np.where(finite, contrib, 0.0)
        order = np.argsort(-contrib, axis=1)[:, :top]
        return [
            [{"feature": cols[j], "value": float(raw[i, j]), "contribution": float(contrib[i, j])}
             for j in order[i] if contrib[i, j] > 0]
            for i in range(len(X))
        ]

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
        :meth:`load` unpickles only bytes whose sha256 the sidecar lists.

        The sidecar holds one hex digest a line: the new checkpoint's first, then the
        digest of the checkpoint it replaces, if that one verified. Both files are written
        to temp files in the same folder and fsynced; then the sidecar is renamed into
        place (and the folder fsynced), then the checkpoint. A crash between the two renames
        leaves the old checkpoint with a sidecar that still lists it, so it loads; a crash
        before leaves both old files; after, both new. So the checkpoint in place is always
        listed, and only digests of bytes a save wrote (fsynced before they are listed) or
        had verified are ever listed. The previous digest stays listed until the next save:
        those bytes were ours and finite. A crash can leave a ``.online-*.tmp`` file behind;
        nothing reads it.
        """
        if not self.state_is_finite():
            raise ValueError("refusing to checkpoint an online learner whose state is not finite")
        path = os.fspath(path)
        sidecar = path + SIDECAR_SUFFIX
        folder = os.path.dirname(os.path.abspath(path))
        data = pickle.dumps({"version": _CHECKPOINT_VERSION, "learner": self},
                            protocol=pickle.HIGHEST_PROTOCOL)
        digests = [hashlib.sha256(data).hexdigest()]
        current = _verified_digest(path, sidecar)
        if current is not None and current != digests[0]:
            digests.append(current)
        temps: list[str] = []
        try:
            tmp_data = _write_temp(folder, data, temps)
            tmp_sidecar = _write_temp(folder, "".join(d + "\n" for d in digests).encode(), temps)
            os.replace(tmp_sidecar, sidecar)
            temps.remove(tmp_sidecar)
            fsync_dir(folder)  # the sidecar's rename is durable before the checkpoint's
            os.replace(tmp_data, path)
            temps.remove(tmp_data)
            fsync_dir(folder)
        finally:
            for tmp in temps:
                if os.path.exists(tmp):
                    os.unlink(tmp)

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
        sidecar = path + SIDECAR_SUFFIX
        with open(path, "rb") as f:
            data = f.read()
        try:
            allowed = _read_sidecar(sidecar)
        except FileNotFoundError:
            raise CheckpointError(
                f"{path!r} has no checksum sidecar {sidecar!r} (checkpoints written before "
                f"format v{_CHECKPOINT_VERSION} have none): not unpickling it; the online "
                "learner starts fresh"
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest not in allowed:
            raise CheckpointError(
                f"{path!r} (sha256 {digest}) does not match its sidecar {sidecar!r}: corrupt "
                "or altered, not unpickling it; the online learner starts fresh"
            )
        try:
            obj = pickle.loads(data)  # noqa: S301 - bytes save() wrote, verified above
        except Exception as e:  # ours, but e.g. from code that has since changed
            raise CheckpointError(f"{path!r} could not be unpickled ({type(e).__name__}: {e}); "
                                  "the online learner starts fresh") from e
        if not isinstance(obj, dict) or obj.get("version") != _CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{path!r} is not an online-learner checkpoint v{_CHECKPOINT_VERSION}")
        learner = obj.get("learner")
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

    def __repr__(self) -> str:
        return (
            f"OnlineLearner(model={self.model!r}, class_weight_fraud={self.class_weight_fraud}, "
            f"sampler={self.sampler!r}, seed={self.seed}, n_learned={self._n_learned}, "
            f"n_refused={self._n_refused})"
        )


def _top(x: Mapping[str, float], contrib: Mapping[str, float], top: int
         ) -> list[dict[str, float]]:
    """The ``top`` positive, finite contributions of one row, largest first."""
    ranked = sorted(((c, k) for k, c in contrib.items() if math.isfinite(c) and c > 0),
                    reverse=True)[:top]
    return [{"feature": k, "value": float(x[k]), "contribution": float(c)} for c, k in ranked]


def _accumulators(logreg: Any) -> dict[Any, float]:
    """The optimiser's per-weight state (AdaGrad's squared-gradient sums; SGD has none)."""
    return getattr(logreg.optimizer, "g2", _NO_ACCUMULATORS)


_NO_ACCUMULATORS: dict[Any, float] = {}


def _write_temp(folder: str, data: bytes, temps: list[str]) -> str:
    """``data`` in a new fsynced temp file in ``folder``; its name is appended to ``temps``."""
    fd, tmp = tempfile.mkstemp(prefix=".online-", suffix=".tmp", dir=folder)
    temps.append(tmp)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _read_sidecar(sidecar: str) -> set[str]:
    """The digests a sidecar lists; :class:`CheckpointError` if it is not one a line."""
    with open(sidecar, "rb") as f:
        raw = f.read(4096)
    try:
        lines = raw.decode("ascii").split()
    except UnicodeDecodeError:
        lines = []
    if not lines or not all(len(d) == 64 and set(d) <= set("0123456789abcdef") for d in lines):
        raise CheckpointError(f"checksum sidecar {sidecar!r} is malformed: the online learner "
                              "starts fresh")
    return set(lines)


def _verified_digest(path: str, sidecar: str) -> str | None:
    """The sha256 of the checkpoint at ``path`` if its sidecar lists it, else ``None``."""
    try:
        allowed = _read_sidecar(sidecar)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except (OSError, CheckpointError):
        return None
    return digest if digest in allowed else None


class PrequentialMetrics:
    """Ranking quality of scores given *before* their labels, over the last ``window`` labels.

    Undefined values (no frauds in the window for AP and recall, nothing flagged for
    precision, an empty window) are ``nan``.

    >>> m = PrequentialMetrics(window=4)
    >>> for s, y in [(0.9, True), (0.2, False), (0.7, False), (0.6, True)]:
    ...     m.update(s, y)
    >>> round(m.average_precision(), 4), m.recall_at(0.65), m.precision_at(0.65)
    (0.8333, 0.5, 0.5)
    """

    def __init__(self, window: int = 10_000) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._scores: deque[float] = deque(maxlen=window)
        self._labels: deque[bool] = deque(maxlen=window)

    @property
    def n(self) -> int:
        """Labelled scores in the window."""
        return len(self._labels)

    @property
    def n_positives(self) -> int:
        """Frauds in the window."""
        return sum(self._labels)

    def update(self, score: float, y: bool) -> None:
        """Add the score a transaction got and its (later) label."""
        self._scores.append(float(score))
        self._labels.append(bool(y))

    def update_many(self, scores: Iterable[float], ys: Iterable[bool]) -> None:
        """Add several (score, label) pairs in order."""
        for score, y in zip(scores, ys, strict=True):
            self.update(score, y)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self._labels)
        return (
            np.fromiter(self._scores, dtype=np.float64, count=n),
            np.fromiter(self._labels, dtype=bool, count=n),
        )

    def base_rate(self) -> float:
        """Fraud share of the window (the AP of a random ranking)."""
        return self.n_positives / self.n if self.n else math.nan

    def average_precision(self) -> float:
        """Average precision, as ``sklearn.metrics.average_precision_score``.

        AP = sum over distinct score thresholds of (R_k - R_{k-1}) * P_k, ties grouped.
        """
        scores, labels = self._arrays()
        if not labels.any():
            return math.nan
        order = np.argsort(-scores, kind="stable")
        scores, labels = scores[order], labels[order]
        # Last index of each run of equal scores: one threshold per distinct score.
        last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
        tps = np.cumsum(labels)[last]
        precision = tps / (last + 1)
        recall = tps / tps[-1]
        return float(np.sum(np.diff(recall, prepend=0.0) * precision))

    def recall_at(self, threshold: float) -> float:
        """Share of the window's frauds scored ``>= threshold``."""
        scores, labels = self._arrays()
        positives = labels.sum()
        if not positives:
            return math.nan
        return float((labels & (scores >= threshold)).sum() / positives)

    def precision_at(self, threshold: float) -> float:
        """Share of frauds among the window's scores ``>= threshold``."""
        scores, labels = self._arrays()
        flagged = scores >= threshold
        if not flagged.any():
            return math.nan
        return float(labels[flagged].mean())

    def __repr__(self) -> str:
        return f"PrequentialMetrics(window={self.window}, n={self.n})"
