"""Targeted synthetic frauds: which of many sampled candidates to keep.

A generator samples more candidates than needed (``oversample`` x); one of these picks the
``n`` to add to the training set:

``select_hard``       the candidates the current champion finds hardest: those it scores
                      nearest its decision threshold (``"boundary"``) or lowest (``"low"``).
                      A fraud the champion already scores 0.99 teaches the next model little.
``select_clusters``   k-means on the real frauds (standardised columns); each candidate goes
                      to its nearest cluster, and the clusters with few real frauds get more
                      than their share, so rare fraud patterns are not drowned by common ones.
``select_novel``      the candidates in sampling order (an untargeted draw), less those
                      closer to a real fraud than 95 % of the real frauds are to their nearest
                      other one: near-copies of training rows are dropped, the rest of the
                      generator's distribution is kept as it is.

Pure: arrays in, row indices into the candidates out.

>>> select_hard(np.array([0.9, 0.1, 0.45, 0.6]), 2, threshold=0.5).tolist()
[2, 3]
>>> select_hard(np.array([0.9, 0.1, 0.45, 0.6]), 2, mode="low").tolist()
[1, 2]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from scipy.special import logit
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors

from .quality import column_scale

__all__ = ["TARGETS", "cluster_quotas", "select", "select_clusters", "select_hard",
           "select_novel"]

TARGETS = ("none", "novel", "boundary", "low", "clusters")
"""Ways of picking synthetic frauds: keep the first ``n`` candidates (``none``), or
:func:`select_novel`, :func:`select_hard` with its mode, or :func:`select_clusters`."""

_EPS = 1e-6  # keeps logit finite for scores of exactly 0 or 1


def select(
    target: str,
    candidates: np.ndarray,
    n: int,
    *,
    score: Callable[[np.ndarray], np.ndarray] | None = None,
    real: np.ndarray | None = None,
    threshold: float = 0.5,
    k: int = 8,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Indices of the ``n`` candidates ``target`` (one of :data:`TARGETS`) keeps (``novel``:
    at most ``n``), and the cluster counts for ``clusters`` or the near-copies dropped for
    ``novel``. ``score`` (the champion's ``predict_proba``) is needed for ``boundary`` and
    ``low``, ``real`` (the real frauds) for ``clusters`` and ``novel``.
    """
    if target == "none":
        if not 0 <= n <= len(candidates):
            raise ValueError(f"n must be in [0, {len(candidates)}], got {n}")
        return np.arange(n), None
    if target == "novel":
        if real is None:
            raise ValueError("target 'novel' needs the real frauds")
        return select_novel(real, candidates, n)
    if target == "clusters":
        if real is None:
            raise ValueError("target 'clusters' needs the real frauds")
        return select_clusters(real, candidates, n, k=k, seed=seed)
    if target in ("boundary", "low"):
        if score is None:
            raise ValueError(f"target {target!r} needs a model to score the candidates")
        return select_hard(score(candidates), n, mode=target, threshold=threshold), None
    raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")


def select_hard(
    scores: np.ndarray,
    n: int,
    *,
    mode: Literal["boundary", "low"] = "boundary",
    threshold: float = 0.5,
) -> np.ndarray:
    """Indices of the ``n`` candidates the champion scored hardest, in ascending index order.

    ``scores`` are the champion's fraud probabilities of the candidates. ``"boundary"``:
    nearest ``threshold`` on the log-odds scale (0.45 and 0.55 are as near as 0.05 and 0.95
    are far); ``"low"``: the lowest scores, the frauds it would miss. Ties go to the earlier
    candidate.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ValueError("scores must be a 1-D array of finite values")
    if not 0 <= n <= len(scores):
        raise ValueError(f"n must be in [0, {len(scores)}], got {n}")
    if mode == "boundary":
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        s = np.clip(scores, _EPS, 1 - _EPS)
        key = np.abs(logit(s) - logit(threshold))
    elif mode == "low":
        key = scores
    else:
        raise ValueError(f"mode must be 'boundary' or 'low', got {mode!r}")
    return np.sort(np.argsort(key, kind="stable")[:n])


def select_novel(
    real: np.ndarray, candidates: np.ndarray, n: int, *, quantile: float = 0.05
) -> tuple[np.ndarray, dict[str, Any]]:
    """Indices of the first ``n`` candidates that are no near-copy of a real row.

    A near-copy is closer to its nearest row of ``real`` (the frauds the generator was fitted
    on) than the ``quantile`` of the distances from each real row to its nearest *other* real
    row: how close two distinct real frauds come. Distances are Euclidean on columns
    standardised by ``real``, as the quality report's DCR. Candidate order is the sampler's
    (random), so what is kept is an untargeted draw without the copies; when fewer than ``n``
    remain, all of them are kept (fewer rows, never a copy).

    Returns ``(indices, info)``: indices in ascending order; ``info`` has the ``threshold``
    distance and how many of the candidates looked at were ``dropped``, of how many
    (``looked_at``): a share well above ``quantile`` means the generator memorises.

    >>> real = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0], [6.0, 0.0]])
    >>> idx, info = select_novel(real, np.array([[0.1, 0.0], [1.0, 1.0], [10.0, 0.0]]), 2)
    >>> idx.tolist(), info["dropped"]
    ([1, 2], 1)
    """
    real = np.asarray(real, dtype=np.float64)
    candidates = np.asarray(candidates, dtype=np.float64)
    if real.ndim != 2 or candidates.ndim != 2 or real.shape[1] != candidates.shape[1]:
        raise ValueError(f"need 2-D arrays with the same columns, got {real.shape} and "
                         f"{candidates.shape}")
    if len(real) < 2:
        raise ValueError("target 'novel' needs at least 2 real rows")
    if not 0 <= n <= len(candidates):
        raise ValueError(f"n must be in [0, {len(candidates)}], got {n}")
    mu, sd = column_scale(real)  # as the quality report's DCR
    r, c = (real - mu) / sd, (candidates - mu) / sd
    nn = NearestNeighbors(n_neighbors=2).fit(r)
    threshold = float(np.quantile(nn.kneighbors(r)[0][:, 1], quantile))  # [:, 0] is itself
    novel = nn.kneighbors(c, n_neighbors=1)[0][:, 0] > threshold
    kept = np.flatnonzero(novel)[:n]
    looked_at = int(kept[-1]) + 1 if len(kept) == n and n else len(candidates)
    info = {"threshold": threshold, "looked_at": looked_at,
            "dropped": int(looked_at - novel[:looked_at].sum())}
    return kept, info


def cluster_quotas(counts: np.ndarray, n: int, power: float = 0.5) -> np.ndarray:
    """Synthetic rows per cluster, ``n`` in all, filling the clusters with few real rows first.

    After augmentation cluster ``j`` should hold a share proportional to ``counts[j] ** power``
    of all rows: ``power=1`` keeps the real proportions, ``0`` makes every cluster the same
    size, ``0.5`` is in between (rare patterns grow, a handful of outliers does not take
    everything). Each cluster gets its deficit to that target; the quotas are rounded by
    largest remainder so they sum to ``n``.

    >>> cluster_quotas(np.array([80, 20]), 20, power=0.0).tolist()
    [0, 20]
    >>> cluster_quotas(np.array([80, 20]), 20, power=1.0).tolist()
    [16, 4]
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0 or (counts < 0).any():
        raise ValueError("counts must be a non-empty 1-D array of counts >= 0")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    weight = np.where(counts > 0, counts, 0.0) ** power
    weight = np.where(counts > 0, weight, 0.0)
    if weight.sum() == 0:
        weight = np.ones_like(counts)
    target = (counts.sum() + n) * weight / weight.sum()
    deficit = np.clip(target - counts, 0.0, None)
    if deficit.sum() == 0:
        deficit = weight
    return _round_to_total(n * deficit / deficit.sum(), n)


def select_clusters(
    real: np.ndarray,
    candidates: np.ndarray,
    n: int,
    *,
    k: int = 8,
    power: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Indices of ``n`` candidates that fill the under-represented fraud clusters.

    K-means (``k`` clusters, fewer when there are few real rows) on ``real`` (the real
    frauds), both arrays standardised by ``real``'s mean and standard deviation; each candidate
    belongs to its nearest centroid, and cluster ``j`` gets ``cluster_quotas(counts, n,
    power)[j]`` of them (in candidate order, which is random for a sampler's output). A cluster
    with too few candidates gives its shortfall to the others, in candidate order.

    Returns ``(indices, info)``: indices in ascending order; ``info`` has per cluster the
    ``real`` count, the ``candidates`` that fell in it and the ``chosen`` count.
    """
    real = np.asarray(real, dtype=np.float64)
    candidates = np.asarray(candidates, dtype=np.float64)
    if real.ndim != 2 or candidates.ndim != 2 or real.shape[1] != candidates.shape[1]:
        raise ValueError(f"need 2-D arrays with the same columns, got {real.shape} and "
                         f"{candidates.shape}")
    if not 0 <= n <= len(candidates):
        raise ValueError(f"n must be in [0, {len(candidates)}], got {n}")
    mu, sd = real.mean(axis=0), real.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    k = max(1, min(k, len(real) // 5))  # at least ~5 real rows per cluster
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit((real - mu) / sd)
    counts = np.bincount(km.labels_, minlength=k)
    cand_cluster = km.predict((candidates - mu) / sd)
    quotas = cluster_quotas(counts, n, power)
    chosen = np.zeros(len(candidates), dtype=bool)
    for j in range(k):
        members = np.flatnonzero(cand_cluster == j)
        chosen[members[: quotas[j]]] = True
    short = n - int(chosen.sum())
    if short > 0:
        chosen[np.flatnonzero(~chosen)[:short]] = True
    info = {
        "real": counts.tolist(),
        "candidates": np.bincount(cand_cluster, minlength=k).tolist(),
        "chosen": np.bincount(cand_cluster[chosen], minlength=k).tolist(),
    }
    return np.flatnonzero(chosen), info


def _round_to_total(x: np.ndarray, total: int) -> np.ndarray:
    """Whole numbers that sum to ``total``, each the floor of ``x`` or one more."""
    out = np.floor(x).astype(np.int64)
    rest = total - int(out.sum())
    if rest > 0:
        out[np.argsort(-(x - out), kind="stable")[:rest]] += 1
    return out
