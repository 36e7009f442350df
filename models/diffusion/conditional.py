"""``ConditionalDiffusion``: one model of every class, sampled per class with guidance.

The frauds-only ``TabularDiffusion`` learns from a few hundred rows. This variant learns the
whole table (frauds plus a sample of legitimate rows) with the class as an input, so what the
classes share (how amounts, counts and ratios move together) is learned from all rows, and
samples one class at a time.

Classifier-free guidance (Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022): during
training each row's label is replaced by the "null" class with probability ``p_uncond``, so
the same network predicts the noise with and without the label; sampling class ``c`` uses

    eps = (1 + w) * eps(x_t, t, c) - w * eps(x_t, t, null)        (their eq. 6)

``w = 0`` is the plain conditional model; ``w > 0`` pushes samples away from what the classes
have in common, towards what marks class ``c``.

Example:
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(150, 2)), rng.normal(3, 1, size=(50, 2))])
    >>> y = np.r_[np.zeros(150), np.ones(50)].astype(int)
    >>> model = ConditionalDiffusion(hidden=(32, 32), steps=20, device="cpu").fit(X, y)
    >>> model.sample(5, seed=1, label=1).shape
    (5, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from .model import ProgressFn, TabularDiffusion, resolve_device
from .network import DenoiserConfig
from .transform import FeatureKind

__all__ = ["CONDITIONAL_CHECKPOINT_FORMAT", "ConditionalDiffusion"]

CONDITIONAL_CHECKPOINT_FORMAT = "fraudstream.conditional_diffusion/1"


class ConditionalDiffusion(TabularDiffusion):
    """``TabularDiffusion`` with a class label input and classifier-free guidance.

    Args:
        feature_kinds, **kwargs: as ``TabularDiffusion`` (sizes, schedule, optimiser, device,
            seed). The normalisation is fitted on all rows, whatever their class.
        n_classes: labels are ``0 .. n_classes - 1``; index ``n_classes`` is "null".
        p_uncond: probability that a training row's label is dropped to "null" (0.1-0.2 in
            Ho & Salimans); 0 trains no unconditional model, so guidance needs it > 0.
        guidance: default guidance weight ``w`` of ``sample`` (>= 0).

    Attributes (besides ``TabularDiffusion``'s):
        class_counts_: training rows per class.
    """

    _FORMAT = CONDITIONAL_CHECKPOINT_FORMAT
    _PARAMS = TabularDiffusion._PARAMS + ("n_classes", "p_uncond", "guidance")

    def __init__(
        self,
        feature_kinds: Sequence[FeatureKind] | None = None,
        *,
        n_classes: int = 2,
        p_uncond: float = 0.1,
        guidance: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(feature_kinds, **kwargs)
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        if not 0.0 <= p_uncond < 1.0:
            raise ValueError(f"p_uncond must be in [0, 1), got {p_uncond}")
        if guidance < 0:
            raise ValueError(f"guidance must be >= 0, got {guidance}")
        self.n_classes = n_classes
        self.p_uncond = p_uncond
        self.guidance = guidance

    def fit(  # type: ignore[override]
        self,
        X: np.ndarray,
        y: Sequence[int] | np.ndarray,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        progress: ProgressFn | None = None,
        progress_every: int = 200,
    ) -> ConditionalDiffusion:
        """Fit on rows ``X`` with class labels ``y`` (integers in ``[0, n_classes)``)."""
        y = np.asarray(y)
        if y.shape != (len(X),):
            raise ValueError(f"need one label per row: {len(X)} rows, labels {y.shape}")
        if y.size and (not np.all(y == np.round(y)) or y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"labels must be integers in [0, {self.n_classes})")
        labels = y.astype(np.int64)
        # On the training device, so batches index it there like the rows.
        self._labels = torch.from_numpy(labels).to(resolve_device(self.device))
        try:
            super().fit(X, epochs=epochs, steps=steps, progress=progress,
                        progress_every=progress_every)
        finally:
            del self._labels
        self.class_counts_ = np.bincount(labels, minlength=self.n_classes)
        return self

    def _network_config(self, d: int) -> DenoiserConfig:
        return DenoiserConfig(d, tuple(self.hidden), self.time_dim, self.dropout, self.n_classes)

    def _batch_labels(self, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """The batch's labels, each dropped to "null" with probability ``p_uncond``."""
        drop = torch.rand(idx.shape[0], generator=g, device=idx.device) < self.p_uncond
        return torch.where(drop, self.n_classes, self._labels[idx])

    # -- sampling --------------------------------------------------------------------------

    @torch.inference_mode()
    def sample(  # type: ignore[override]
        self,
        n: int,
        seed: int = 0,
        *,
        label: int = 1,
        guidance: float | None = None,
        sampler: Literal["ancestral", "ddim"] = "ancestral",
        steps: int | None = None,
    ) -> np.ndarray:
        """Draw ``n`` rows of class ``label`` with guidance weight ``guidance`` (``None``: the
        constructor's); otherwise as ``TabularDiffusion.sample``."""
        w = self.guidance if guidance is None else float(guidance)
        if w < 0:
            raise ValueError(f"guidance must be >= 0, got {w}")
        if not 0 <= label < self.n_classes:
            raise ValueError(f"label must be in [0, {self.n_classes}), got {label}")
        return self._reverse(n, seed, sampler, steps, lambda x, t: self._guided(x, t, label, w))

    def _guided(self, x: torch.Tensor, t: float, label: int, w: float) -> torch.Tensor:
        m = x.shape[0]
        if w == 0:
            return self._eps_given(x, t, torch.full((m,), label, device=x.device))
        # Conditional and unconditional predictions in one pass over a doubled batch.
        y = torch.full((2 * m,), self.n_classes, device=x.device)
        y[:m] = label
        eps = self._eps_given(torch.cat([x, x]), t, y)
        cond, uncond = eps[:m], eps[m:]
        return cond + w * (cond - uncond)

    def _eps_given(self, x: torch.Tensor, t: float, y: torch.Tensor) -> torch.Tensor:
        tt = torch.full((x.shape[0],), t, device=x.device)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
            return self.network_(x, tt, y).float()
