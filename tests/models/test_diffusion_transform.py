"""Quantile-to-Gaussian normalisation: exact inverse, valid outputs for every kind."""

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fraudstream.models.diffusion import QuantileGaussian, parse_kind

KINDS = ["continuous", "integer", "binary", "bounded", ("bounded", -1.0, 2.0)]


def _mixed(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.lognormal(3, 1, n),  # amount
            rng.poisson(2.0, n),  # count
            rng.random(n) < 0.1,  # flag
            rng.beta(0.5, 2.0, n),  # ratio in [0, 1]
            rng.uniform(-1, 2, n),  # ratio in [-1, 2]
        ]
    ).astype(float)


def _assert_valid(X: np.ndarray) -> None:
    assert np.isfinite(X).all()
    assert np.all(X[:, 1] >= 0) and np.all(X[:, 1] == np.round(X[:, 1]))
    assert set(np.unique(X[:, 2])) <= {0.0, 1.0}
    assert np.all((0 <= X[:, 3]) & (X[:, 3] <= 1))
    assert np.all((-1 <= X[:, 4]) & (X[:, 4] <= 2))


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(2, 300), st.integers(1, 4)),
        elements=st.floats(-1e6, 1e6, allow_subnormal=False),
    ),
    st.none() | st.integers(2, 1000),
)
def test_inverse_is_identity_on_training_data(X, n_quantiles):
    qg = QuantileGaussian(n_quantiles=n_quantiles).fit(X)
    Z = qg.transform(X)
    assert np.isfinite(Z).all() and np.abs(Z).max() <= qg.z_max_ + 1e-9
    span = X.max(axis=0) - X.min(axis=0)
    np.testing.assert_allclose(qg.inverse_transform(Z), X, rtol=1e-9, atol=1e-9 * span.max())


def test_inverse_is_exact_for_mixed_kinds_and_output_is_roughly_normal():
    X = _mixed(2000)
    qg = QuantileGaussian(KINDS).fit(X)
    Z = qg.transform(X)
    np.testing.assert_allclose(qg.inverse_transform(Z), X, rtol=1e-9, atol=1e-9)
    # continuous columns come out N(0, 1)
    for j in (0, 3, 4):
        assert abs(Z[:, j].mean()) < 0.05 and abs(Z[:, j].std() - 1) < 0.05


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 50), st.just(5)),
              elements=st.floats(-40, 40, allow_subnormal=False)))  # fmt: skip
def test_inverse_of_any_scores_is_valid_for_every_kind(Z):
    qg = QuantileGaussian(KINDS).fit(_mixed(500))
    _assert_valid(qg.inverse_transform(Z))


def test_inverse_of_random_scores_keeps_the_marginals():
    qg = QuantileGaussian(KINDS).fit(X := _mixed(5000))
    S = qg.inverse_transform(np.random.default_rng(1).standard_normal((5000, 5)))
    _assert_valid(S)
    assert abs(S[:, 2].mean() - X[:, 2].mean()) < 0.02  # fraud-flag share
    assert abs(S[:, 1].mean() - X[:, 1].mean()) < 0.1  # mean count


def test_constant_columns_map_to_zero_and_back():
    X = np.column_stack([np.full(50, 7.5), np.zeros(50), np.arange(50.0)])
    qg = QuantileGaussian(["continuous", "binary", "integer"]).fit(X)
    Z = qg.transform(X)
    assert np.all(Z[:, :2] == 0)
    back = qg.inverse_transform(np.random.default_rng(0).normal(size=(20, 3)) * 3)
    assert np.all(back[:, 0] == 7.5) and np.all(back[:, 1] == 0)


def test_state_dict_survives_weights_only_load():
    X = _mixed(300)
    qg = QuantileGaussian(KINDS, n_quantiles=100).fit(X)
    buf = io.BytesIO()
    torch.save(qg.state_dict(), buf)
    buf.seek(0)
    qg2 = QuantileGaussian.from_state_dict(torch.load(buf, weights_only=True))
    Z = np.random.default_rng(0).normal(size=(100, 5))
    np.testing.assert_array_equal(qg2.transform(X), qg.transform(X))
    np.testing.assert_array_equal(qg2.inverse_transform(Z), qg.inverse_transform(Z))
    qg2.fit(X)  # the rebuilt spec is a valid constructor argument


def test_data_that_breaks_its_kind_is_rejected():
    with pytest.raises(ValueError, match="outside"):
        QuantileGaussian(["integer"]).fit(np.array([[1.0], [-1.0]]))
    with pytest.raises(ValueError, match="non-whole"):
        QuantileGaussian(["integer"]).fit(np.array([[1.0], [1.5]]))
    with pytest.raises(ValueError, match="outside"):
        QuantileGaussian(["bounded"]).fit(np.array([[0.5], [1.5]]))
    with pytest.raises(ValueError, match="NaN"):
        QuantileGaussian().fit(np.array([[0.5], [np.nan]]))
    with pytest.raises(ValueError, match="2 feature kinds"):
        QuantileGaussian(["binary", "binary"]).fit(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="unknown"):
        parse_kind("categorical")
    assert parse_kind(("bounded", 1, 3)) == ("bounded", 1.0, 3.0)
