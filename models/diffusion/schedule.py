"""The forward noise process and its reverse steps: pure tensor maths, no parameters.

The forward process is the Ornstein-Uhlenbeck SDE used by Justin Le, "Generative Modeling
with Diffusion" (arXiv 2412.10948)::

    dX = -X dt + sqrt(2) dB,   X_t = e^{-t} X_0 + sqrt(1 - e^{-2t}) Z,   Z ~ N(0, I)

so ``alpha(t) = e^{-t}`` and ``sigma(t)^2 = 1 - e^{-2t}``; by ``t_max`` (6 by default,
``alpha ~ 2.5e-3``) X_t is N(0, I) to within noise, which is where sampling starts.

Times are continuous. Training draws them log-uniformly on ``[t_min, t_max]`` and samplers
walk a log-spaced grid, because the signal-to-noise ratio changes fastest near t = 0
(``sigma(t)^2 ~ 2t``) and hardly at all once ``t > 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["OUSchedule"]

Time = float | torch.Tensor


@dataclass(frozen=True)
class OUSchedule:
    """Ornstein-Uhlenbeck noise schedule on ``[t_min, t_max]``.

    Example:
        >>> s = OUSchedule()
        >>> x0 = torch.zeros(4, 2)
        >>> s.add_noise(x0, torch.ones(4, 2), torch.full((4,), 100.0))[0]
        tensor([1., 1.])
    """

    t_min: float = 1e-3
    t_max: float = 6.0

    def __post_init__(self) -> None:
        if not 0.0 < self.t_min < self.t_max:
            raise ValueError(f"need 0 < t_min < t_max, got {self.t_min}, {self.t_max}")

    # -- marginals -------------------------------------------------------------------------

    @staticmethod
    def alpha(t: torch.Tensor) -> torch.Tensor:
        """Signal scale ``e^{-t}`` of X_t given X_0."""
        return torch.exp(-t)

    @staticmethod
    def sigma(t: torch.Tensor) -> torch.Tensor:
        """Noise scale ``sqrt(1 - e^{-2t})`` of X_t given X_0."""
        # -expm1 keeps precision at small t, where 1 - e^{-2t} would cancel.
        return torch.sqrt(-torch.expm1(-2.0 * t))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: Time) -> torch.Tensor:
        """Sample X_t from X_0 by the closed form ``e^{-t} x0 + sqrt(1 - e^{-2t}) noise``.

        ``t`` is a float, a 0-d tensor or one time per row (shape ``(n,)``).
        """
        tt = _as_column(t, x0)
        return self.alpha(tt) * x0 + self.sigma(tt) * noise

    def sample_times(
        self, n: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """Training times, log-uniform on ``[t_min, t_max]`` (shape ``(n,)``)."""
        u = torch.rand(n, generator=generator, device=device)
        lo, hi = math.log(self.t_min), math.log(self.t_max)
        return torch.exp(lo + (hi - lo) * u)

    def timesteps(self, n_steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Decreasing sampling grid ``t_max, ..., t_min, 0`` of ``n_steps + 1`` times.

        ``n_steps`` reverse steps walk it; the last one jumps from ``t_min`` to 0 and returns
        the network's estimate of X_0.
        """
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        grid = torch.logspace(
            math.log10(self.t_max), math.log10(self.t_min), n_steps, dtype=torch.float64
        )
        return torch.cat([grid, grid.new_zeros(1)]).to(device=device, dtype=torch.float32)

    # -- reverse steps ---------------------------------------------------------------------

    def predict_x0(
        self, eps_pred: torch.Tensor, t: Time, x: torch.Tensor, clip: float | None = None
    ) -> torch.Tensor:
        """Invert the closed form: ``x0 = (x_t - sigma(t) eps) / alpha(t)``, optionally clipped.

        Clipping (DDPM's ``clip_sample``) matters at large t, where dividing by a tiny
        ``alpha`` turns small noise-prediction errors into huge x0 estimates.
        """
        tt = _as_column(t, x)
        x0 = (x - self.sigma(tt) * eps_pred) / self.alpha(tt)
        return x0 if clip is None else x0.clamp(-clip, clip)

    def step(
        self,
        eps_pred: torch.Tensor,
        t: Time,
        t_prev: Time,
        x: torch.Tensor,
        generator: torch.Generator | None,
        clip: float | None = None,
    ) -> torch.Tensor:
        """One ancestral step: sample X_{t_prev} | X_t = x, X_0 = x0_hat (``t_prev < t``).

        The OU transition from s = t_prev to t is X_t | X_s ~ N(a X_s, (1 - a^2) I) with
        a = e^{-(t-s)}, and X_s | X_0 ~ N(alpha_s X_0, sigma_s^2 I). Conditioning the joint
        Gaussian on X_t (the same algebra as DDPM's posterior, Ho et al. 2020, eqs. 6-7):

            X_s | X_t, X_0 ~ N( alpha_s (1 - a^2) / sigma_t^2 * X_0 + a sigma_s^2 / sigma_t^2 * X_t,
                                sigma_s^2 (1 - a^2) / sigma_t^2 * I )

        With ``t_prev = 0`` the variance is 0 and the mean is X_0: the step returns x0_hat.
        """
        tt, ss = _as_column(t, x), _as_column(t_prev, x)
        x0 = self.predict_x0(eps_pred, tt, x, clip)
        a = torch.exp(ss - tt)
        one_minus_a2 = -torch.expm1(2.0 * (ss - tt))
        var_t = -torch.expm1(-2.0 * tt)
        var_s = -torch.expm1(-2.0 * ss)
        mean = (self.alpha(ss) * one_minus_a2 * x0 + a * var_s * x) / var_t
        std = torch.sqrt(var_s * one_minus_a2 / var_t)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return mean + std * noise

    def ddim_step(
        self,
        eps_pred: torch.Tensor,
        t: Time,
        t_prev: Time,
        x: torch.Tensor,
        clip: float | None = None,
    ) -> torch.Tensor:
        """One deterministic DDIM step (eta = 0) from t to ``t_prev``.

        ``x_s = alpha_s x0_hat + sigma_s eps_hat`` (Song et al. 2021, eq. 12). It is the
        exact solution of the probability-flow ODE when eps_hat is constant over the step
        (the first-order exponential integrator, DPM-Solver-1), so it tolerates far larger
        steps than the ancestral sampler.
        """
        tt, ss = _as_column(t, x), _as_column(t_prev, x)
        x0 = self.predict_x0(eps_pred, tt, x, clip)
        if clip is not None:
            # Keep eps consistent with the clipped x0 so the step stays on the same line.
            eps_pred = (x - self.alpha(tt) * x0) / self.sigma(tt)
        return self.alpha(ss) * x0 + self.sigma(ss) * eps_pred


def _as_column(t: Time, x: torch.Tensor) -> torch.Tensor:
    """``t`` as a tensor on x's device that broadcasts against ``x`` row by row."""
    tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return tt.reshape(-1, *([1] * (x.dim() - 1))) if tt.dim() == 1 else tt
