"""Synthetic frauds for the batch model: which kind each feature is, sampling, augmenting.

:func:`feature_kinds` is the one mapping from feature names to the kinds the diffusion model
understands (``fraudstream.models.diffusion.transform``): the offline evaluation and the
trainer both use it, so a feature cannot be treated as a count in one place and as a real
number in another. :func:`synthesize_frauds` fits a diffusion model and samples new frauds:
one of the :data:`SYNTHESIS_MODELS`, a ``TabularDiffusion`` on the real frauds alone, or a
``ConditionalDiffusion`` on the frauds plus a sample of legitimate rows
(:func:`legit_sample`), sampled as frauds with classifier-free guidance. :func:`augment`
appends them to a training set as extra positives and remembers which rows are synthetic.

Example:
    >>> from fraudstream.models.features import FEATURE_NAMES
    >>> feature_kinds(["amount", "is_night", "card_count_7d", "terminal_fraud_ratio_1d"])
    ['continuous', 'binary', 'integer', 'bounded']
    >>> X_aug, y_aug, synthetic = augment(np.zeros((3, 2)), [0, 1, 0], np.ones((2, 2)))
    >>> y_aug.tolist(), synthetic.tolist()
    ([0, 1, 0, 1, 1], [False, False, False, True, True])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from .diffusion import ConditionalDiffusion, FeatureKind, ProgressFn, TabularDiffusion

__all__ = ["LEGIT_PER_FRAUD", "SYNTHESIS_MODELS", "augment", "default_steps", "feature_kind",
           "conditioning_rows", "feature_kinds", "legit_sample", "synthesize_frauds"]

SYNTHESIS_MODELS = ("frauds_only", "conditional")
"""``frauds_only``: a ``TabularDiffusion`` fitted on the frauds; ``conditional``: a
``ConditionalDiffusion`` fitted on the frauds and ``LEGIT_PER_FRAUD`` legitimate rows each."""

LEGIT_PER_FRAUD = 4  # legitimate rows per fraud in the conditional model's table

# (pattern, kind), first match wins. Mirrors the feature set of ``features.py``.
_KIND_RULES: tuple[tuple[re.Pattern[str], FeatureKind], ...] = (
    (re.compile(r"^amount$"), "continuous"),
    (re.compile(r"^is_(weekend|night)$"), "binary"),
    (re.compile(r"^(card|terminal)_count_\d+[mhd]$"), "integer"),
    (re.compile(r"^card_mean_amount_\d+d$"), "continuous"),
    (re.compile(r"^terminal_fraud_ratio_\d+d$"), "bounded"),
    # The extended set's card features (features.py, docs/features.md).
    (re.compile(r"^card_seconds_since_prev$"), "continuous"),
    (re.compile(r"^card_amount_(sum_\d+[mhd]|ratio_\d+d)$"), "continuous"),
    (re.compile(r"^card_terminal_new_\d+d$"), "binary"),
    (re.compile(r"^card_distinct_terminals_\d+[mhd]$"), "integer"),
    # Extra numeric features passed in on the wire: nothing is known about them.
    (re.compile(r"^x_.+$"), "continuous"),
)


def feature_kind(name: str) -> FeatureKind:
    """The diffusion kind of one feature column (``continuous``, ``integer``, ...).

    Raises ``ValueError`` for a name the feature set does not define, rather than guess:
    a new feature must be given its kind here.
    """
    for pattern, kind in _KIND_RULES:
        if pattern.match(name):
            return kind
    raise ValueError(f"no diffusion kind is defined for feature {name!r}; add it to _KIND_RULES")


def feature_kinds(names: Sequence[str]) -> list[FeatureKind]:
    """:func:`feature_kind` of each name, in order."""
    return [feature_kind(n) for n in names]


def default_steps(n_rows: int) -> int:
    """Optimiser steps for a fit on ``n_rows`` frauds: about 6 per row, within [500, 3000].

    Measured on the default simulation (4 windows, ~480 training frauds each): 5000 steps
    memorised (DCR share 0.19 against ~0.05 for fresh real frauds; gates failed 4/4), while
    1000 steps gave DCR share 0.05, C2ST AUC 0.61 and equal or better average precision.
    With the trainer's ``novel`` target (near-copies dropped), ``evaluate-synthesis --seeds 5``
    (20 windows, ~440-500 fit frauds) at 3000 steps against ~2 per row: C2ST AUC 0.597 vs
    0.635 (<= 0.70 in 20 and 19 of 20), DCR share of the kept rows 0.016 vs 0.017, AP gain
    +0.0187 vs +0.0170, near-copies dropped 2-10 % vs 4-9 % of the candidates. 3000 is the
    most measured without memorising. A fixed step count means ever more passes over a small
    window, so it scales with rows.
    """
    return int(min(3000, max(500, 6 * n_rows)))


def legit_sample(
    X: np.ndarray, legit: np.ndarray, n: int, seed: int = 0
) -> np.ndarray:
    """``n`` rows of ``X`` drawn without replacement where the mask ``legit`` is set (all of
    them when fewer): the legitimate rows of the conditional model. Indexes only the rows it
    keeps, so a window of millions of rows is not copied.

    >>> legit_sample(np.arange(10.0).reshape(5, 2), np.array([1, 0, 1, 0, 1], bool), 2).shape
    (2, 2)
    """
    idx = np.flatnonzero(legit)
    if n < len(idx):
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    return np.asarray(X[idx], dtype=np.float64)


def conditioning_rows(
    model: str, X: np.ndarray, legit: np.ndarray, n_frauds: int, seed: int = 0
) -> np.ndarray | None:
    """The legitimate rows ``synthesize_frauds`` needs for synthesis model ``model`` (one of
    :data:`SYNTHESIS_MODELS`): ``None`` for ``frauds_only``; for ``conditional``,
    ``LEGIT_PER_FRAUD * n_frauds`` rows of ``X`` where the mask ``legit`` is set."""
    if model == "frauds_only":
        return None
    if model == "conditional":
        return legit_sample(X, legit, LEGIT_PER_FRAUD * n_frauds, seed)
    raise ValueError(f"unknown synthesis model {model!r}; expected one of {SYNTHESIS_MODELS}")


def synthesize_frauds(
    X_frauds: np.ndarray,
    kinds: Sequence[FeatureKind] | None,
    n: int,
    *,
    X_legit: np.ndarray | None = None,
    hidden: Sequence[int] | None = None,
    steps: int | None = None,
    sampler: Literal["ancestral", "ddim"] = "ancestral",
    device: str = "auto",
    seed: int = 0,
    progress: ProgressFn | None = None,
    **diffusion_params: Any,
) -> tuple[np.ndarray, TabularDiffusion]:
    """Fit a diffusion model on real fraud rows and draw ``n`` synthetic fraud rows.

    With ``X_legit`` (legitimate rows, e.g. :func:`legit_sample`) the model is a
    ``ConditionalDiffusion`` fitted on both classes (``p_uncond`` and ``guidance`` in
    ``diffusion_params``), its default ``steps`` counted over both, and the rows are sampled
    as frauds; without it, a ``TabularDiffusion`` on the frauds alone. ``kinds`` is one kind
    per column (see :func:`feature_kinds`); ``hidden`` and ``steps`` (optimiser steps;
    ``None``: :func:`default_steps` for this many rows) and any other ``TabularDiffusion``
    argument in ``diffusion_params`` configure the model, ``sampler`` picks the reverse
    process. ``seed`` seeds the fit, and
    ``seed + 1`` the sampling. ``progress(step, total, loss)`` is called during the fit.

    Returns ``(X_synth, model)``: rows float64 ``(n, n_features)`` in the units of
    ``X_frauds`` (whole counts, 0/1 flags, ratios in [0, 1]), and the fitted model, whose
    ``fit_seconds_`` and ``device_`` say where and how long it trained.
    """
    X_frauds = np.asarray(X_frauds, dtype=np.float64)
    if X_frauds.ndim != 2 or len(X_frauds) < 2:
        raise ValueError(f"need a 2-D array of at least 2 fraud rows, got shape {X_frauds.shape}")
    if kinds is not None and len(kinds) != X_frauds.shape[1]:
        raise ValueError(f"{len(kinds)} kinds for {X_frauds.shape[1]} columns")
    if hidden is not None:
        diffusion_params["hidden"] = tuple(hidden)
    kinds = list(kinds) if kinds is not None else None
    if X_legit is None:
        diffusion_params["steps"] = steps if steps is not None else default_steps(len(X_frauds))
        model = TabularDiffusion(kinds, device=device, seed=seed, **diffusion_params)
        model.fit(X_frauds, progress=progress)
        return model.sample(n, seed=seed + 1, sampler=sampler), model
    X_legit = np.asarray(X_legit, dtype=np.float64).reshape(-1, X_frauds.shape[1])
    X = np.vstack([X_frauds, X_legit])
    y = np.r_[np.ones(len(X_frauds), np.int64), np.zeros(len(X_legit), np.int64)]
    diffusion_params["steps"] = steps if steps is not None else default_steps(len(X))
    cond = ConditionalDiffusion(kinds, device=device, seed=seed, **diffusion_params)
    cond.fit(X, y, progress=progress)
    return cond.sample(n, seed=seed + 1, label=1, sampler=sampler), cond


def augment(
    X: np.ndarray, y: Sequence[int] | np.ndarray, X_synth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Append synthetic frauds to a training set.

    Returns ``(X_aug, y_aug, is_synthetic)``: the real rows first, unchanged and in order,
    then the synthetic rows labelled 1; ``is_synthetic`` is a boolean mask over ``X_aug``'s
    rows. The inputs are not modified.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    X_synth = np.asarray(X_synth, dtype=np.float64)
    if X.ndim != 2 or y.shape != (len(X),):
        raise ValueError(f"X must be 2-D with one label per row, got {X.shape} and {y.shape}")
    if X_synth.size == 0:
        X_synth = X_synth.reshape(0, X.shape[1])  # "no synthetic rows" in any shape
    if X_synth.ndim != 2 or X_synth.shape[1] != X.shape[1]:
        raise ValueError(f"X_synth must have X's {X.shape[1]} columns, got {X_synth.shape}")
    X_aug = np.vstack([X, X_synth])
    y_aug = np.concatenate([y.astype(np.int64), np.ones(len(X_synth), dtype=np.int64)])
    is_synthetic = np.zeros(len(X_aug), dtype=bool)
    is_synthetic[len(X) :] = True
    return X_aug, y_aug, is_synthetic
