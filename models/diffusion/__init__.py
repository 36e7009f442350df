"""Tabular diffusion for synthetic frauds.

One role per file: ``schedule`` (the Ornstein-Uhlenbeck noise process and reverse steps,
pure tensor maths), ``network`` (the MLP denoiser and its config), ``transform``
(quantile-to-Gaussian normalisation with an exact inverse), ``model`` (``TabularDiffusion``:
fit, sample, save, load), ``conditional`` (``ConditionalDiffusion``: every class in one model,
sampled per class with classifier-free guidance). ``bench`` is a program that measures speed
(``python -m fraudstream.models.diffusion.bench``), imported on its own.

Example:
    >>> from fraudstream.models.diffusion import TabularDiffusion
    >>> model = TabularDiffusion(["continuous", "integer", "binary"])  # doctest: +SKIP
    >>> synthetic = model.fit(frauds).sample(1000, seed=0)  # doctest: +SKIP
"""

from .conditional import CONDITIONAL_CHECKPOINT_FORMAT, ConditionalDiffusion
from .model import (
    CHECKPOINT_FORMAT,
    ProgressFn,
    TabularDiffusion,
    device_name,
    resolve_device,
)
from .network import Denoiser, DenoiserConfig, timestep_embedding
from .schedule import OUSchedule
from .transform import FEATURE_KINDS, FeatureKind, QuantileGaussian, parse_kind

__all__ = [
    "CHECKPOINT_FORMAT",
    "CONDITIONAL_CHECKPOINT_FORMAT",
    "ConditionalDiffusion",
    "FEATURE_KINDS",
    "Denoiser",
    "DenoiserConfig",
    "FeatureKind",
    "OUSchedule",
    "ProgressFn",
    "QuantileGaussian",
    "TabularDiffusion",
    "device_name",
    "parse_kind",
    "resolve_device",
    "timestep_embedding",
]
