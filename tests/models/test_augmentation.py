"""Augmentation: one feature-kind mapping, synthetic frauds that respect it, augmented sets."""

import numpy as np
import pytest

from fraudstream.models.augmentation import augment, feature_kind, feature_kinds, synthesize_frauds
from fraudstream.models.diffusion import parse_kind
from fraudstream.models.features import FEATURE_NAMES, FEATURE_SETS, feature_names



def test_every_feature_has_a_valid_kind():
    kinds = dict(zip(FEATURE_NAMES, feature_kinds(FEATURE_NAMES), strict=True))
    for kind in kinds.values():
        parse_kind(kind)  # raises if the diffusion model does not know it
    assert kinds["amount"] == "continuous"
    assert kinds["is_weekend"] == kinds["is_night"] == "binary"
    for name, kind in kinds.items():
        if "_count_" in name:
            assert kind == "integer", name
        if "mean_amount" in name:
            assert kind == "continuous", name
        if "fraud_ratio" in name:
            assert kind == "bounded", name


@pytest.mark.parametrize("feature_set", sorted(FEATURE_SETS))
def test_every_feature_set_has_kinds_the_diffusion_model_knows(feature_set):
    names = feature_names((), feature_set)
    kinds = dict(zip(names, feature_kinds(names), strict=True))
    for kind in kinds.values():
        parse_kind(kind)
    for name, kind in kinds.items():
        if "_count_" in name or "distinct_terminals" in name:
            assert kind == "integer", name
        if name.startswith("card_terminal_new"):
            assert kind == "binary", name


def test_extra_features_are_continuous_and_unknown_names_refused():
    assert feature_kinds(feature_names(["score_a"]))[-1] == "continuous"
    with pytest.raises(ValueError, match="no diffusion kind"):
        feature_kind("card_velocity")


def test_augment_appends_synthetic_positives_and_marks_them():
    X = np.arange(12, dtype=float).reshape(4, 3)
    y = np.array([0, 1, 0, 0])
    synth = np.full((2, 3), 7.0)
    X_before, y_before = X.copy(), y.copy()
    X_aug, y_aug, is_synthetic = augment(X, y, synth)
    assert X_aug.shape == (6, 3) and y_aug.shape == (6,) and is_synthetic.shape == (6,)
    np.testing.assert_array_equal(X_aug[:4], X)
    np.testing.assert_array_equal(X_aug[4:], synth)
    assert y_aug.tolist() == [0, 1, 0, 0, 1, 1]
    assert is_synthetic.tolist() == [False] * 4 + [True] * 2
    np.testing.assert_array_equal(X, X_before)  # inputs untouched
    np.testing.assert_array_equal(y, y_before)


def test_augment_with_no_synthetic_rows_and_bad_shapes():
    X, y = np.zeros((3, 2)), np.array([0, 1, 0])
    X_aug, y_aug, mask = augment(X, y, np.empty((0, 2)))
    assert X_aug.shape == (3, 2) and not mask.any()
    assert augment(X, y, [])[0].shape == (3, 2)
    with pytest.raises(ValueError, match="columns"):
        augment(X, y, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="one label per row"):
        augment(X, y[:2], np.zeros((1, 2)))


def fraud_like(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([
        rng.lognormal(4, 1, n),  # amount
        rng.integers(0, 2, n),  # flag
        rng.poisson(3, n),  # count
        rng.beta(0.5, 2, n),  # ratio
    ]).astype(float)  # fmt: skip


def test_synthesize_frauds_respects_kinds_and_seed():
    X = fraud_like(120, seed=0)
    kinds = ["continuous", "binary", "integer", "bounded"]
    params = dict(hidden=(16, 16), steps=40, n_steps=20, device="cpu")
    synth, model = synthesize_frauds(X, kinds, 200, seed=3, **params)
    assert synth.shape == (200, 4) and np.isfinite(synth).all()
    assert set(np.unique(synth[:, 1])) <= {0.0, 1.0}
    assert (synth[:, 2] >= 0).all() and (synth[:, 2] == np.round(synth[:, 2])).all()
    assert ((synth[:, 3] >= 0) & (synth[:, 3] <= 1)).all()
    assert model.fit_seconds_ > 0 and str(model.device_) == "cpu"
    again, _ = synthesize_frauds(X, kinds, 200, seed=3, **params)
    np.testing.assert_array_equal(synth, again)
    with pytest.raises(ValueError, match="kinds"):
        synthesize_frauds(X, kinds[:2], 10, **params)
