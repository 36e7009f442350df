"""ConditionalDiffusion: learns each class, guidance changes the samples, labels are dropped."""

import numpy as np
import pytest
import torch

from fraudstream.models.diffusion import (
    ConditionalDiffusion, Denoiser, DenoiserConfig, TabularDiffusion)


def two_classes(n0: int, n1: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 around (-2, 0), class 1 around (+2, 1): far apart, so a sample's class shows."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal([-2.0, 0.0], 0.5, size=(n0, 2)),
                   rng.normal([2.0, 1.0], 0.5, size=(n1, 2))])
    return X, np.r_[np.zeros(n0, np.int64), np.ones(n1, np.int64)]


@pytest.fixture(scope="module")
def fitted() -> ConditionalDiffusion:
    X, y = two_classes(600, 200, seed=0)
    model = ConditionalDiffusion(hidden=(64, 64), steps=300, n_steps=30, p_uncond=0.2,
                                 device="cpu", seed=0)
    return model.fit(X, y)


def test_samples_have_the_right_shape_and_are_finite(fitted):
    for w in (0.0, 2.0):
        for sampler in ("ancestral", "ddim"):
            s = fitted.sample(64, seed=1, label=1, guidance=w, sampler=sampler, steps=10)
            assert s.shape == (64, 2) and s.dtype == np.float64 and np.isfinite(s).all()
    assert fitted.sample(0, label=1).shape == (0, 2)
    assert fitted.class_counts_.tolist() == [600, 200]


def test_each_label_samples_its_own_class(fitted):
    ones = fitted.sample(400, seed=2, label=1, guidance=0.0)
    zeros = fitted.sample(400, seed=2, label=0, guidance=0.0)
    # Nearest class centre on the first axis: x > 0 is class 1.
    assert (ones[:, 0] > 0).mean() > 0.9
    assert (zeros[:, 0] < 0).mean() > 0.9


def test_guidance_changes_the_samples_and_defaults_to_the_constructor(fitted):
    plain = fitted.sample(200, seed=3, label=1, guidance=0.0)
    guided = fitted.sample(200, seed=3, label=1, guidance=3.0)
    assert np.abs(plain - guided).mean() > 1e-3
    # Same seed, same weight: the same rows; guidance=None is the constructor's weight.
    np.testing.assert_array_equal(guided, fitted.sample(200, seed=3, label=1, guidance=3.0))
    np.testing.assert_array_equal(fitted.sample(50, seed=4, label=1),
                                  fitted.sample(50, seed=4, label=1, guidance=fitted.guidance))


def test_labels_are_dropped_to_null_at_the_rate_p_uncond():
    def dropped(p: float) -> float:
        model = ConditionalDiffusion(p_uncond=p, device="cpu")
        model._labels = torch.ones(1000, dtype=torch.int64)
        labels = model._batch_labels(torch.arange(1000), torch.Generator().manual_seed(0))
        assert set(labels.unique().tolist()) <= {1, 2}  # the label itself or null (= 2)
        return float((labels == 2).float().mean())

    assert dropped(0.0) == 0.0
    assert 0.25 < dropped(0.3) < 0.35


def test_training_feeds_the_network_dropped_labels(monkeypatch):
    seen = []
    forward = Denoiser.forward

    def spy(self, x, t, y=None):
        if self.training:
            seen.append(y.clone())
        return forward(self, x, t, y)

    monkeypatch.setattr(Denoiser, "forward", spy)
    X, y = two_classes(100, 100, seed=1)
    ConditionalDiffusion(hidden=(16,), steps=20, p_uncond=0.5, device="cpu").fit(X, y)
    labels = torch.cat(seen)
    assert len(seen) == 20 and set(labels.unique().tolist()) == {0, 1, 2}
    assert 0.4 < float((labels == 2).float().mean()) < 0.6


def test_save_load_round_trip(fitted, tmp_path):
    path = tmp_path / "conditional.pt"
    fitted.save(path)
    loaded = ConditionalDiffusion.load(path)
    assert loaded.get_params() == fitted.get_params()
    np.testing.assert_array_equal(loaded.sample(100, seed=5, label=1, guidance=1.5, steps=10),
                                  fitted.sample(100, seed=5, label=1, guidance=1.5, steps=10))
    with pytest.raises(ValueError, match="checkpoint"):
        TabularDiffusion.load(path)  # different parameters: refused, not misread


def test_bad_arguments_are_refused(fitted):
    X, y = two_classes(20, 20, seed=2)
    with pytest.raises(ValueError, match="labels"):
        ConditionalDiffusion(steps=1, device="cpu").fit(X, y + 1)  # 2 is not a class
    with pytest.raises(ValueError, match="one label per row"):
        ConditionalDiffusion(steps=1, device="cpu").fit(X, y[:-1])
    with pytest.raises(ValueError, match="label"):
        fitted.sample(5, label=2)
    with pytest.raises(ValueError, match="guidance"):
        fitted.sample(5, guidance=-1.0)
    with pytest.raises(ValueError, match="p_uncond"):
        ConditionalDiffusion(p_uncond=1.0)


def test_an_unconditional_denoiser_has_no_label_input_and_the_same_init():
    config = DenoiserConfig(3, (8,), 8)
    net = Denoiser(config)
    assert not hasattr(net, "label_emb")
    with pytest.raises(ValueError, match="no label input"):
        net(torch.zeros(2, 3), torch.ones(2), torch.zeros(2, dtype=torch.int64))
    # The label embedding is drawn after every Linear: the shared layers start the same.
    a, b = Denoiser(config), Denoiser(DenoiserConfig(3, (8,), 8, n_classes=2))
    a.reset_parameters(torch.Generator().manual_seed(0))
    b.reset_parameters(torch.Generator().manual_seed(0))
    for name, p in a.state_dict().items():
        torch.testing.assert_close(p, b.state_dict()[name])
