"""The denoiser: an MLP that predicts the noise eps in X_t from (X_t, t[, class]).

TabDDPM-like (Kotelnikov et al., ICML 2023): the input is projected to the width of the
time embedding and added to it, then a stack of Linear -> SiLU -> Dropout blocks. The config
is a plain dataclass so a checkpoint can store it and rebuild the module (nanoGPT style).

With ``n_classes > 0`` a learned class embedding is added as well, as TabDDPM conditions on
the target; its extra last row is the "null" class that classifier-free guidance (Ho &
Salimans 2022) trains by dropping labels and uses for the unconditional prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["Denoiser", "DenoiserConfig", "timestep_embedding"]

# The embedding sees 100 * log(t): one unit of log-time spans 100 radians at the highest
# frequency, so the ~9 units of log-time in [1e-3, 6] get distinct, smooth codes.
_LOG_TIME_SCALE = 100.0
_T_FLOOR = 1e-5  # log(0) guard; samplers never evaluate the network at t = 0


@dataclass
class DenoiserConfig:
    """Sizes of the denoiser.

    Attributes:
        d_in: number of features (the width of X_t and of the predicted noise).
        hidden: widths of the hidden layers.
        time_dim: width of the sinusoidal time embedding and of the input projection.
        dropout: dropout after each hidden layer (TabDDPM found 0 best for most tables).
        n_classes: classes of the label input; 0 (the default) means no label input.
    """

    d_in: int
    hidden: tuple[int, ...] = field(default=(256, 256, 256))
    time_dim: int = 128
    dropout: float = 0.0
    n_classes: int = 0

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.d_in < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"bad sizes: d_in={self.d_in}, hidden={self.hidden}")
        if self.time_dim < 2 or self.time_dim % 2:
            raise ValueError(f"time_dim must be even and >= 2, got {self.time_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.n_classes < 0:
            raise ValueError(f"n_classes must be >= 0, got {self.n_classes}")


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of diffusion times ``t`` (shape ``(n,)``) -> ``(n, dim)``.

    The transformer position code, applied to ``100 * log(t)`` rather than t itself: the
    noise level of the OU process moves on a log-time scale.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    u = _LOG_TIME_SCALE * torch.log(t.float().clamp_min(_T_FLOOR))
    args = u[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Denoiser(nn.Module):
    """``eps_hat = Denoiser(config)(x_t, t[, y])``; x_t ``(n, d_in)``, t and y ``(n,)``.

    ``y`` (class indices, ``n_classes`` for "null") only when ``config.n_classes > 0``.
    """

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.time_mlp = nn.Sequential(
            nn.Linear(c.time_dim, c.time_dim), nn.SiLU(), nn.Linear(c.time_dim, c.time_dim)
        )
        self.proj = nn.Linear(c.d_in, c.time_dim)
        layers: list[nn.Module] = []
        width = c.time_dim
        for h in c.hidden:
            layers += [nn.Linear(width, h), nn.SiLU(), nn.Dropout(c.dropout)]
            width = h
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(width, c.d_in)
        # Built only when conditional, so an unconditional network's seeded init is unchanged.
        if c.n_classes:
            self.label_emb = nn.Embedding(c.n_classes + 1, c.time_dim)  # last row: null class

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-initialise every Linear like PyTorch's default, drawing from ``generator``.

        Lets a seeded fit get the same initial weights without touching the global RNG.
        """
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(m.in_features)
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, generator=generator)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predicted noise, same shape as ``x``; ``y=None`` is the null class."""
        h = self.proj(x) + self.time_mlp(timestep_embedding(t, self.config.time_dim))
        if self.config.n_classes:
            if y is None:
                y = torch.full((x.shape[0],), self.config.n_classes, device=x.device)
            h = h + self.label_emb(y)
        elif y is not None:
            raise ValueError("this denoiser has no label input (n_classes is 0)")
        return self.head(self.blocks(h))
