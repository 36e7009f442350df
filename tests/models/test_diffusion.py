"""TabularDiffusion: learns a known distribution, reproducible, round-trips through a file."""

import math

import numpy as np
import pytest
import torch

from fraudstream.models.diffusion import TabularDiffusion
from fraudstream.models.diffusion.bench import benchmark, synthetic_table
from fraudstream.models.quality import c2st_auc



def mixture(n: int, seed: int) -> np.ndarray:
    """Three well-separated, tight, correlated 2-D Gaussian blobs."""
    rng = np.random.default_rng(seed)
    centers = np.array([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]])
    noise = rng.normal(scale=[0.5, 0.3], size=(n, 2)) @ np.array([[1.0, 0.5], [0.0, 1.0]])
    return centers[rng.integers(0, 3, n)] + noise


@pytest.fixture(scope="module")
def fitted() -> tuple[TabularDiffusion, list[tuple[int, int, float]]]:
    calls: list[tuple[int, int, float]] = []
    model = TabularDiffusion(hidden=(128, 128), steps=1500, n_steps=100, device="cpu", seed=0)
    model.fit(mixture(2000, seed=0), progress=lambda *a: calls.append(a), progress_every=500)
    return model, calls


def test_fit_records_device_time_and_progress(fitted):
    model, calls = fitted
    assert model.device_ == torch.device("cpu")
    assert model.fit_seconds_ > 0 and model.steps_ == 1500 and math.isfinite(model.loss_)
    assert [c[:2] for c in calls] == [(500, 1500), (1000, 1500), (1500, 1500)]
    # noise prediction must beat predicting 0 (loss 1) by a wide margin
    assert calls[-1][2] < 0.8 and model.loss_ < 0.8


def test_ancestral_samples_match_a_2d_mixture(fitted):
    model, _ = fitted
    samples = model.sample(2000, seed=1)
    assert samples.shape == (2000, 2)
    assert c2st_auc(mixture(2000, seed=1), samples, seed=0) < 0.7


def test_ddim_samples_are_reasonable_with_few_steps(fitted):
    model, _ = fitted
    real = mixture(2000, seed=1)
    samples = model.sample(2000, seed=1, sampler="ddim", steps=25)
    assert c2st_auc(real, samples, seed=0) < 0.75
    np.testing.assert_allclose(samples.mean(0), real.mean(0), atol=0.2)
    np.testing.assert_allclose(samples.std(0), real.std(0), rtol=0.1)


def test_same_seed_same_samples_other_seed_other_samples(fitted):
    model, _ = fitted
    for sampler in ("ancestral", "ddim"):
        a = model.sample(50, seed=7, sampler=sampler, steps=10)
        np.testing.assert_array_equal(a, model.sample(50, seed=7, sampler=sampler, steps=10))
        assert not np.allclose(a, model.sample(50, seed=8, sampler=sampler, steps=10))


def test_save_load_round_trip_gives_identical_samples(fitted, tmp_path):
    model, _ = fitted
    path = tmp_path / "diffusion.pt"
    model.save(path)
    torch.load(path, weights_only=True)  # only tensors and plain Python inside
    loaded = TabularDiffusion.load(path)
    assert loaded.get_params() == model.get_params()
    assert loaded.fit_seconds_ == model.fit_seconds_
    for sampler in ("ancestral", "ddim"):
        np.testing.assert_array_equal(
            loaded.sample(300, seed=3, sampler=sampler, steps=20),
            model.sample(300, seed=3, sampler=sampler, steps=20),
        )


def test_fit_is_reproducible_and_leaves_global_rng_alone():
    X, kinds = synthetic_table(300, 8, seed=1)
    X_before = X.copy()
    state = torch.get_rng_state()

    def fit_and_sample() -> np.ndarray:
        model = TabularDiffusion(kinds, hidden=(32, 32), steps=30, dropout=0.1, device="cpu")
        return model.fit(X).sample(100, seed=0, steps=10)

    first = fit_and_sample()
    np.testing.assert_array_equal(first, fit_and_sample())
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(X, X_before)


def test_samples_respect_feature_kinds():
    X, kinds = synthetic_table(400, 8, seed=2)
    model = TabularDiffusion(kinds, hidden=(32, 32), steps=50, device="cpu").fit(X)
    for sampler in ("ancestral", "ddim"):
        S = model.sample(1000, seed=0, sampler=sampler, steps=10)
        assert S.shape == (1000, 8) and np.isfinite(S).all()
        for j, kind in enumerate(kinds):
            col = S[:, j]
            if kind == "integer":
                assert np.all(col >= 0) and np.all(col == np.round(col))
            elif kind == "binary":
                assert set(np.unique(col)) <= {0.0, 1.0}
            elif kind == "bounded":
                assert np.all((col >= 0) & (col <= 1))


def test_epochs_steps_and_errors():
    X = np.random.default_rng(0).normal(size=(100, 2))
    model = TabularDiffusion(hidden=(8,), batch_size=50, device="cpu")
    with pytest.raises(RuntimeError, match="not fitted"):
        model.sample(1)
    assert model.fit(X, epochs=2).steps_ == 4  # 2 passes of ceil(100 / 50) batches
    assert model.fit(X, steps=3).steps_ == 3
    with pytest.raises(ValueError, match="not both"):
        model.fit(X, epochs=1, steps=1)
    by_epochs = TabularDiffusion(hidden=(8,), batch_size=50, epochs=3, device="cpu")
    assert by_epochs.fit(X).steps_ == 6  # constructor epochs win over the default steps
    with pytest.raises(ValueError, match="sampler"):
        model.sample(1, sampler="euler")  # type: ignore[arg-type]
    assert model.sample(0).shape == (0, 2)


def test_benchmark_reports_measured_numbers():
    out = benchmark(200, 4, steps=5, device="cpu", n_samples=200, hidden=(16,), n_steps=5)
    assert out["device"] == "cpu" and out["fit_seconds"] > 0
    assert out["ancestral_samples_per_second"] > 0 and out["ddim_samples_per_second"] > 0
    assert out["peak_memory_bytes"] > 0


@pytest.mark.cuda
def test_fit_and_sample_on_cuda(tmp_path):
    # `make test` selects this test only where nvidia-smi sees a GPU; `make test-cuda` runs it.
    assert torch.cuda.is_available(), "needs a CUDA device (run `make test-cuda` on a GPU machine)"
    X = mixture(4000, seed=0)
    model = TabularDiffusion(hidden=(128, 128), steps=1500, n_steps=100, seed=0)
    model.fit(X)
    assert model.device_.type == "cuda"
    samples = model.sample(2000, seed=1)
    np.testing.assert_array_equal(samples, model.sample(2000, seed=1))
    assert c2st_auc(mixture(2000, seed=1), samples, seed=0) < 0.7
    ddim = model.sample(2000, seed=1, sampler="ddim", steps=25)
    assert c2st_auc(mixture(2000, seed=1), ddim, seed=0) < 0.75
    model.save(tmp_path / "m.pt")
    on_cpu = TabularDiffusion.load(tmp_path / "m.pt", device="cpu")
    assert on_cpu.device_.type == "cpu" and on_cpu.sample(10, seed=0).shape == (10, 2)
