"""The OU noise process: closed form vs the SDE, and the reverse steps vs the forward joint."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from fraudstream.models.diffusion import OUSchedule

N = 20_000  # paths; standard error of a mean <= sqrt(1.25 / N) = 0.008
M0, V0 = 1.5, 0.25  # X_0 ~ N(M0, V0), away from the stationary N(0, 1) so decay is visible
TIMES = (0.1, 0.5, 1.0, 2.0)


def _moment_tolerances(var: float) -> tuple[float, float]:
    """Five standard errors of the sample mean and variance of N Gaussian draws, plus 0.005
    for Euler-Maruyama's O(dt) bias at dt = 1e-3."""
    return 5 * math.sqrt(var / N) + 5e-3, 5 * var * math.sqrt(2 / N) + 5e-3


def _euler_maruyama(times: tuple[float, ...], dt: float = 1e-3) -> dict[float, np.ndarray]:
    """Simulate dX = -X dt + sqrt(2) dB from X_0 ~ N(M0, V0), keeping X at ``times``."""
    rng = np.random.default_rng(0)
    x = M0 + math.sqrt(V0) * rng.standard_normal(N)
    out, t = {}, 0.0
    for target in times:
        for _ in range(round((target - t) / dt)):
            x = x - x * dt + math.sqrt(2 * dt) * rng.standard_normal(N)
        t = target
        out[target] = x.copy()
    return out


def _expected(t: float) -> tuple[float, float]:
    return math.exp(-t) * M0, math.exp(-2 * t) * V0 + 1 - math.exp(-2 * t)


def test_closed_form_matches_euler_maruyama_simulation():
    sde = _euler_maruyama(TIMES)
    s = OUSchedule()
    g = torch.Generator().manual_seed(1)
    x0 = M0 + math.sqrt(V0) * torch.randn(N, 1, generator=g, dtype=torch.float64)
    for t in TIMES:
        mean, var = _expected(t)
        tol_mean, tol_var = _moment_tolerances(var)
        xt = s.add_noise(x0, torch.randn(N, 1, generator=g, dtype=torch.float64), t)[:, 0]
        for name, sample in (("sde", sde[t]), ("closed form", xt.numpy())):
            assert abs(sample.mean() - mean) < tol_mean, (name, t)
            assert abs(sample.var() - var) < tol_var, (name, t)
        # Beyond two moments: the whole distributions agree.
        assert ks_2samp(sde[t], xt.numpy()).pvalue > 1e-3, t


@pytest.mark.parametrize(("t", "s"), [(0.05, 0.02), (1.0, 0.5), (5.0, 2.0), (0.3, 1e-3)])
def test_ancestral_step_reverses_the_forward_joint(t, s):
    """With the true noise, step() samples X_s | X_t, X_0 exactly, so (X_s, X_t) must have
    the forward process's marginal at s and covariance Cov(X_s, X_t) = e^{-(t-s)} Var(X_s)."""
    sched = OUSchedule()
    g = torch.Generator().manual_seed(2)
    x0 = M0 + math.sqrt(V0) * torch.randn(N, 1, generator=g, dtype=torch.float64)
    eps = torch.randn(N, 1, generator=g, dtype=torch.float64)
    xt = sched.add_noise(x0, eps, t)
    xs = sched.step(eps, t, s, xt, g)[:, 0].numpy()
    mean, var = _expected(s)
    tol_mean, tol_var = _moment_tolerances(var)
    assert abs(xs.mean() - mean) < tol_mean
    assert abs(xs.var() - var) < tol_var
    cov = np.cov(xs, xt[:, 0].numpy())[0, 1]
    assert abs(cov - math.exp(-(t - s)) * var) < tol_var


def test_last_step_to_zero_returns_x0_and_ddim_with_true_noise_is_exact():
    sched = OUSchedule()
    g = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(100, 3, generator=g), torch.randn(100, 3, generator=g)
    t = torch.rand(100, generator=g) * 5 + 0.01
    xt = sched.add_noise(x0, eps, t)
    torch.testing.assert_close(sched.predict_x0(eps, t, xt), x0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sched.step(eps, 0.5, 0.0, sched.add_noise(x0, eps, 0.5), g), x0)
    # DDIM keeps the noise direction: with the true eps it lands on the forward sample at s.
    torch.testing.assert_close(
        sched.ddim_step(eps, 1.0, 0.4, sched.add_noise(x0, eps, 1.0)),
        sched.add_noise(x0, eps, 0.4),
    )


def test_time_grid_and_training_times():
    sched = OUSchedule(t_min=1e-3, t_max=6.0)
    grid = sched.timesteps(50)
    assert grid.shape == (51,)
    assert grid[0].item() == pytest.approx(6.0) and grid[-2].item() == pytest.approx(1e-3)
    assert grid[-1].item() == 0.0 and bool((grid[1:] < grid[:-1]).all())
    t = sched.sample_times(10_000, torch.Generator().manual_seed(0))
    assert 1e-3 <= t.min().item() and t.max().item() <= 6.0
    # log-uniform: the median is the geometric mean of the ends
    assert t.median().item() == pytest.approx(math.sqrt(6e-3), rel=0.1)
    # at t_max the data is forgotten: X_T is N(0, 1) to within 0.3%
    assert sched.alpha(torch.tensor(6.0)).item() < 3e-3


def test_bad_schedule_rejected():
    with pytest.raises(ValueError):
        OUSchedule(t_min=1.0, t_max=0.5)
    with pytest.raises(ValueError):
        OUSchedule().timesteps(0)
