"""Targeted synthetic frauds: near-copies dropped, hard ones near the boundary or low, rare
clusters filled."""

import numpy as np
import pytest

from fraudstream.models.quality import quality_report
from fraudstream.models.targeting import (
    cluster_quotas, select, select_clusters, select_hard, select_novel)


def test_boundary_keeps_the_scores_nearest_the_threshold_on_the_log_odds_scale():
    scores = np.array([0.99, 0.02, 0.31, 0.5, 0.7, 0.001, 0.2])
    assert select_hard(scores, 3, threshold=0.5).tolist() == [2, 3, 4]
    # On the log-odds scale 0.2 is nearer 0.3 than 0.7 is (|logit| 0.85 vs 1.39 from 0.3).
    assert select_hard(scores, 2, threshold=0.3).tolist() == [2, 6]


def test_low_keeps_the_lowest_scores_and_the_indices_are_sorted():
    rng = np.random.default_rng(0)
    scores = rng.random(200)
    idx = select_hard(scores, 20, mode="low")
    assert (np.diff(idx) > 0).all()
    assert scores[idx].max() < np.delete(scores, idx).min()


def test_select_hard_refuses_bad_input():
    with pytest.raises(ValueError, match="n must be"):
        select_hard(np.array([0.1, 0.2]), 3)
    with pytest.raises(ValueError, match="finite"):
        select_hard(np.array([0.1, np.nan]), 1)
    with pytest.raises(ValueError, match="mode"):
        select_hard(np.array([0.1]), 1, mode="high")
    assert select_hard(np.array([0.0, 1.0, 0.6]), 1).tolist() == [2]  # 0 and 1 are fine


@pytest.mark.parametrize("n", [0, 1, 7, 100, 1001])
@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_quotas_sum_to_n_and_favour_small_clusters(n, power):
    counts = np.array([500, 100, 20, 0])
    q = cluster_quotas(counts, n, power)
    assert q.sum() == n and (q >= 0).all() and q[3] == 0  # an empty cluster gets nothing
    if n >= 100 and power < 1:
        # Per real row, the smallest cluster gets more synthetic rows than the largest.
        assert q[2] / 20 > q[0] / 500
    if power == 1.0:
        np.testing.assert_allclose(q[:3], n * counts[:3] / counts.sum(), atol=1)


def test_select_clusters_fills_the_rare_cluster():
    rng = np.random.default_rng(0)
    # Real frauds: 180 in a common pattern, 20 in a rare one. Candidates follow the real mix.
    real = np.vstack([rng.normal(0, 0.3, (180, 2)), rng.normal(5, 0.3, (20, 2))])
    cand = np.vstack([rng.normal(0, 0.3, (540, 2)), rng.normal(5, 0.3, (60, 2))])
    cand = cand[rng.permutation(len(cand))]
    idx, info = select_clusters(real, cand, 100, k=2, power=0.0, seed=0)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100 and (np.diff(idx) > 0).all()
    rare = (cand[idx, 0] > 2.5).sum()
    # Untargeted, 10 % of 100 would be rare; equal cluster sizes want (300 / 2) - 20 = 130,
    # more than the 60 rare candidates: all of them, and the rest from the common cluster.
    assert rare == 60
    assert sorted(info["real"]) == [20, 180] and sum(info["chosen"]) == 100


def test_select_clusters_with_half_power_and_few_real_rows():
    rng = np.random.default_rng(1)
    real = np.vstack([rng.normal(0, 0.3, (90, 2)), rng.normal(5, 0.3, (10, 2))])
    cand = np.vstack([rng.normal(0, 0.3, (300, 2)), rng.normal(5, 0.3, (300, 2))])
    idx, _ = select_clusters(real, cand, 100, k=2, power=0.5, seed=0)
    rare = int((cand[idx, 0] > 2.5).sum())
    # sqrt weights 9.49 : 3.16 -> targets 150 : 50 rows of 200, deficits 60 : 40.
    assert rare == 40
    # k is capped so that clusters hold ~5 real rows each.
    _, info = select_clusters(real[:12], cand, 10, k=8, seed=0)
    assert len(info["real"]) == 2


def test_select_dispatches_by_target_and_names_what_it_lacks():
    candidates = np.arange(12, dtype=np.float64).reshape(6, 2)
    idx, info = select("none", candidates, 3)
    assert idx.tolist() == [0, 1, 2] and info is None

    def score(rows):  # the "champion": fraud probability grows with the first column
        return rows[:, 0] / 10.0

    # scores 0.0, 0.2, 0.4, 0.6, 0.8, 1.0: nearest 0.5 in log-odds are 0.4 and 0.6
    assert select("boundary", candidates, 2, score=score)[0].tolist() == [2, 3]
    assert select("low", candidates, 2, score=score)[0].tolist() == [0, 1]
    idx, info = select("clusters", candidates, 2, real=candidates[:5], k=1)
    assert len(idx) == 2 and sum(info["chosen"]) == 2
    with pytest.raises(ValueError, match="needs a model"):
        select("boundary", candidates, 2)
    with pytest.raises(ValueError, match="needs the real frauds"):
        select("clusters", candidates, 2)
    with pytest.raises(ValueError, match="needs the real frauds"):
        select("novel", candidates, 2)
    idx, info = select("novel", candidates, 2, real=candidates[:3] + 100.0)
    assert idx.tolist() == [0, 1] and info["dropped"] == 0
    with pytest.raises(ValueError, match="unknown target"):
        select("nearest", candidates, 2)
    with pytest.raises(ValueError, match="n must be"):
        select("none", candidates, 7)


def test_novel_drops_the_copies_of_real_rows_and_keeps_the_rest_in_order():
    """A generator that memorised a third of its rows: the copies go, the others stay in
    sampling order, and the quality report's DCR share of what is kept falls to what fresh
    real rows score, while most of the draw is kept."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 4))
    fresh = rng.normal(size=(600, 4))
    copies = real[rng.integers(0, 300, 300)] + rng.normal(scale=1e-3, size=(300, 4))
    candidates = np.vstack([fresh, copies])[rng.permutation(900)]
    is_copy = np.isin(np.arange(900), np.flatnonzero(
        (np.abs(candidates[:, None, :] - copies[None, :, :]).max(axis=2) < 1e-9).any(axis=1)))
    idx, info = select_novel(real, candidates, 500)
    assert len(idx) == 500 and (np.diff(idx) > 0).all()
    assert not is_copy[idx].any()  # every near-copy is dropped
    # ... and few fresh rows with it: about the 5 % of real rows that are that close anyway
    looked = np.arange(info["looked_at"])
    fresh_dropped = np.setdiff1d(looked[~is_copy[looked]], idx).size
    assert fresh_dropped <= 0.10 * (~is_copy[looked]).sum()
    assert info["dropped"] == info["looked_at"] - 500 == is_copy[looked].sum() + fresh_dropped
    holdout = rng.normal(size=(200, 4))
    assert quality_report(real, candidates[:500], holdout)["dcr_share"] > 0.25
    assert quality_report(real, candidates[idx], holdout)["dcr_share"] < 0.10


def test_novel_keeps_fewer_rather_than_a_copy_and_refuses_bad_input():
    real = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0], [6.0, 0.0]])
    candidates = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 1.5]])
    idx, info = select_novel(real, candidates, 3)
    assert idx.tolist() == [2] and info == {"threshold": info["threshold"], "looked_at": 3,
                                            "dropped": 2}
    assert select_novel(real, candidates, 0)[0].tolist() == []
    with pytest.raises(ValueError, match="n must be"):
        select_novel(real, candidates, 4)
    with pytest.raises(ValueError, match="same columns"):
        select_novel(real, candidates[:, :1], 1)
    with pytest.raises(ValueError, match="at least 2"):
        select_novel(real[:1], candidates, 1)
