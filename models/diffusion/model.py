"""``TabularDiffusion``: fit on a table of rows, sample new rows, save and load.

The training loop and the samplers live here; the noise maths is in ``schedule.py``, the
network in ``network.py`` and the per-feature normalisation in ``transform.py``.

Example:
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> model = TabularDiffusion(hidden=(32, 32), steps=20, device="cpu").fit(X)
    >>> model.sample(5, seed=1).shape
    (5, 2)
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .network import Denoiser, DenoiserConfig
from .schedule import OUSchedule
from .transform import FeatureKind, QuantileGaussian

__all__ = ["CHECKPOINT_FORMAT", "ProgressFn", "TabularDiffusion", "device_name", "resolve_device"]

CHECKPOINT_FORMAT = "fraudstream.tabular_diffusion/1"

ProgressFn = Callable[[int, int, float], None]
"""``progress(step, total_steps, mean_loss_since_last_call)``, called every few hundred steps."""

# Default batch per device: a GPU only gets busy with thousands of rows per step, while on
# CPU the cost is linear in the batch and smaller batches buy more optimiser steps.
_AUTO_BATCH = {"cuda": 4096, "cpu": 256}
_SAMPLE_CHUNK = 65_536  # rows per sampling pass; bounds activation memory at ~64 MiB/layer


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's, for benchmark and study reports."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


class TabularDiffusion:
    """Diffusion model for numeric tables (TabDDPM-style, OU forward process).

    Hyper-parameters are stored as given; fitted state ends in ``_``.

    Args:
        feature_kinds: one per column, ``"continuous"``, ``"integer"``, ``"binary"``,
            ``"bounded"`` or ``("bounded", lo, hi)``; ``None`` means all continuous.
            Sampled values always respect their kind.
        hidden, time_dim, dropout: denoiser sizes (see ``DenoiserConfig``).
        t_min, t_max: the time range of the OU process (see ``OUSchedule``).
        n_steps: reverse steps of the ancestral sampler.
        ddim_steps: steps of the deterministic DDIM sampler.
        steps: optimiser steps per fit, unless ``epochs`` is set.
        epochs: passes over the data per fit (``ceil(n_rows / batch_size)`` steps each);
            when set it wins over ``steps``. Batches are drawn with replacement, so an
            "epoch" is a number of rows seen, not a permutation.
        batch_size: rows per step; ``None`` picks 4096 on CUDA and 256 on CPU.
        lr, weight_decay: AdamW settings; the learning rate warms up, then decays on a cosine.
        ema_decay: exponential moving average of the weights used for sampling; 0 disables.
        n_quantiles: quantile grid size of the normalisation; ``None``: ``n_rows // 30``
            clipped to [10, 1000] (see ``QuantileGaussian``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        seed: seeds weight init, batches, times and noise of ``fit``.

    Attributes:
        device_: the torch device used.
        fit_seconds_: wall time of the last ``fit``.
        steps_: optimiser steps of the last ``fit``.
        loss_: mean training loss over the last 10% of steps.
        n_features_in_: number of columns.
    """

    def __init__(
        self,
        feature_kinds: Sequence[FeatureKind] | None = None,
        *,
        hidden: Sequence[int] = (256, 256, 256),
        time_dim: int = 128,
        dropout: float = 0.0,
        t_min: float = 1e-3,
        t_max: float = 6.0,
        n_steps: int = 200,
        ddim_steps: int = 40,
        steps: int | None = 5000,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        ema_decay: float = 0.999,
        n_quantiles: int | None = None,
        device: str | torch.device = "auto",
        seed: int = 0,
    ) -> None:
        self.feature_kinds = feature_kinds
        self.hidden = hidden
        self.time_dim = time_dim
        self.dropout = dropout
        self.t_min = t_min
        self.t_max = t_max
        self.n_steps = n_steps
        self.ddim_steps = ddim_steps
        self.steps = steps
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.ema_decay = ema_decay
        self.n_quantiles = n_quantiles
        self.device = device
        self.seed = seed

    _FORMAT = CHECKPOINT_FORMAT  # a subclass with other parameters has its own

    # -- parameters ------------------------------------------------------------------------

    _PARAMS = (
        "feature_kinds", "hidden", "time_dim", "dropout", "t_min", "t_max", "n_steps",
        "ddim_steps", "steps", "epochs", "batch_size", "lr", "weight_decay", "ema_decay",
        "n_quantiles", "device", "seed",
    )  # fmt: skip

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments as plain Python values (tuples become lists)."""
        params = {name: getattr(self, name) for name in self._PARAMS}
        params["hidden"] = [int(h) for h in self.hidden]
        params["device"] = str(self.device)
        if self.feature_kinds is not None:
            params["feature_kinds"] = [
                k if isinstance(k, str) else list(k) for k in self.feature_kinds
            ]
        return params

    @property
    def schedule(self) -> OUSchedule:
        """The noise schedule these hyper-parameters define."""
        return OUSchedule(t_min=self.t_min, t_max=self.t_max)

    # -- fitting ---------------------------------------------------------------------------

    def fit(
        self,
        X: np.ndarray,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        progress: ProgressFn | None = None,
        progress_every: int = 200,
    ) -> TabularDiffusion:
        """Fit the normalisation and the denoiser on ``X`` (rows x features).

        ``epochs`` or ``steps`` override the constructor's for this call.
        """
        t_start = time.perf_counter()
        self.device_ = resolve_device(self.device)
        dev = self.device_
        on_cuda = dev.type == "cuda"

        self.transform_ = QuantileGaussian(self.feature_kinds, self.n_quantiles).fit(X)
        Z = torch.from_numpy(self.transform_.transform(X).astype(np.float32))
        n, d = Z.shape
        self.n_features_in_ = d
        # Frauds are a small table: keep all of it on the device and index batches there.
        data = Z.pin_memory().to(dev, non_blocking=True) if on_cuda else Z

        batch = self.batch_size or _AUTO_BATCH["cuda" if on_cuda else "cpu"]
        total = self._total_steps(n, batch, epochs, steps)

        g = torch.Generator(device=dev).manual_seed(self.seed)
        net = _empty_network(self._network_config(d))
        net.reset_parameters(torch.Generator().manual_seed(self.seed))
        net.to(dev).train()
        params = list(net.parameters())
        live = [p.detach() for p in params]  # views: they follow the optimiser's updates
        ema = [p.clone() for p in live]

        opt = torch.optim.AdamW(
            params, lr=self.lr, weight_decay=self.weight_decay, fused=on_cuda or None
        )
        warmup = max(1, min(200, total // 20))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda i: min(1.0, (i + 1) / warmup)
            * 0.5 * (1.0 + math.cos(math.pi * min(i, total) / total)),
        )
        schedule = self.schedule

        loss_sum = torch.zeros((), device=dev)  # summed on device: no host sync per step
        tail_sum = torch.zeros((), device=dev)
        tail_from = total - max(1, total // 10)
        since_report = 0
        # Dropout draws from the global RNG; fork it so a seeded fit is reproducible and the
        # caller's RNG state is left as it was.
        fork_devices = [dev] if on_cuda else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(self.seed)
            for i in range(total):
                idx = torch.randint(n, (batch,), generator=g, device=dev)
                x0 = data[idx]
                t = schedule.sample_times(batch, g, dev)
                noise = torch.randn(x0.shape, generator=g, device=dev)
                xt = schedule.add_noise(x0, noise, t)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=on_cuda):
                    pred = net(xt, t, self._batch_labels(idx, g))
                loss = F.mse_loss(pred.float(), noise)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if self.ema_decay > 0:
                    # Short fits would average in the random init: ramp the decay up.
                    decay = min(self.ema_decay, (1 + i) / (10 + i))
                    # One fused kernel per dtype/device for all tensors (what
                    # torch.optim.swa_utils uses for its EMA); no per-tensor Python loop.
                    torch._foreach_lerp_(ema, live, 1.0 - decay)

                loss_sum += loss.detach()
                since_report += 1
                if i >= tail_from:
                    tail_sum += loss.detach()
                if progress is not None and (since_report == progress_every or i == total - 1):
                    progress(i + 1, total, (loss_sum / since_report).item())
                    loss_sum.zero_()
                    since_report = 0

        if self.ema_decay > 0:
            with torch.no_grad():
                for p, e in zip(params, ema, strict=True):
                    p.copy_(e)
        self.network_ = net.eval()
        self.steps_ = total
        self.loss_ = float((tail_sum / (total - tail_from)).item())  # also waits for the GPU
        self.fit_seconds_ = time.perf_counter() - t_start
        return self

    def _network_config(self, d: int) -> DenoiserConfig:
        return DenoiserConfig(d, tuple(self.hidden), self.time_dim, self.dropout)

    def _batch_labels(self, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor | None:
        """The label input of a training batch; none here (``ConditionalDiffusion`` has one)."""
        return None

    def _total_steps(self, n: int, batch: int, epochs: int | None, steps: int | None) -> int:
        if epochs is not None and steps is not None:
            raise ValueError("give epochs or steps, not both")
        if epochs is None and steps is None:
            # The constructor's epochs, when set, win over its (defaulted) steps.
            epochs = self.epochs
            steps = self.steps if epochs is None else None
        if epochs is not None:
            total = epochs * math.ceil(n / batch)
        elif steps is not None:
            total = steps
        else:
            raise ValueError("one of epochs or steps must be set")
        if total < 1:
            raise ValueError(f"need at least one training step, got {total}")
        return int(total)

    # -- sampling --------------------------------------------------------------------------

    @torch.inference_mode()
    def sample(
        self,
        n: int,
        seed: int = 0,
        *,
        sampler: Literal["ancestral", "ddim"] = "ancestral",
        steps: int | None = None,
    ) -> np.ndarray:
        """Draw ``n`` new rows in the original units, float64 ``(n, n_features_in_)``.

        ``sampler="ancestral"`` is the stochastic reverse process (``n_steps`` steps);
        ``"ddim"`` the deterministic probability-flow sampler (``ddim_steps`` steps), several
        times faster. Same seed, device and model -> the same rows.
        """
        return self._reverse(n, seed, sampler, steps, self._eps)

    def _reverse(
        self,
        n: int,
        seed: int,
        sampler: str,
        steps: int | None,
        eps_fn: Callable[[torch.Tensor, float], torch.Tensor],
    ) -> np.ndarray:
        """The reverse process with noise predictions ``eps_fn(x_t, t)``; see ``sample``."""
        self._check_fitted()
        if sampler not in ("ancestral", "ddim"):
            raise ValueError(f"sampler must be 'ancestral' or 'ddim', got {sampler!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return np.empty((0, self.n_features_in_))
        dev = self.device_
        n_steps = steps or (self.n_steps if sampler == "ancestral" else self.ddim_steps)
        grid = self.schedule.timesteps(n_steps).tolist()  # host floats: no device reads in loop
        clip = self.transform_.z_max_
        g = torch.Generator(device=dev).manual_seed(seed)

        out = torch.empty((n, self.n_features_in_), dtype=torch.float32, device=dev)
        for start in range(0, n, _SAMPLE_CHUNK):
            m = min(_SAMPLE_CHUNK, n - start)
            x = torch.randn((m, self.n_features_in_), generator=g, device=dev)
            for t, t_prev in zip(grid[:-1], grid[1:], strict=True):
                eps = eps_fn(x, t)
                if sampler == "ancestral":
                    x = self.schedule.step(eps, t, t_prev, x, g, clip=clip)
                else:
                    x = self.schedule.ddim_step(eps, t, t_prev, x, clip=clip)
            out[start : start + m] = x
        return self.transform_.inverse_transform(out.cpu().numpy().astype(np.float64))

    def _eps(self, x: torch.Tensor, t: float) -> torch.Tensor:
        tt = torch.full((x.shape[0],), t, device=x.device)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
            return self.network_(x, tt).float()

    # -- checkpoints -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write config, normalisation and weights to one ``torch.save`` file."""
        self._check_fitted()
        config = asdict(self.network_.config)
        config["hidden"] = list(config["hidden"])
        torch.save(
            {
                "format": self._FORMAT,
                "params": self.get_params(),
                "network_config": config,
                "transform": self.transform_.state_dict(),
                "weights": {k: v.detach().cpu() for k, v in self.network_.state_dict().items()},
                "fit": {
                    "steps": self.steps_,
                    "loss": self.loss_,
                    "fit_seconds": self.fit_seconds_,
                    "device": str(self.device_),
                },
            },
            path,
        )

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], device: str | torch.device | None = None
    ) -> TabularDiffusion:
        """Rebuild a fitted model from ``save()``; ``device`` overrides the saved setting."""
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt.get("format") != cls._FORMAT:
            raise ValueError(f"{path}: not a {cls._FORMAT} checkpoint")
        params = dict(ckpt["params"])
        if params["feature_kinds"] is not None:
            params["feature_kinds"] = [
                k if isinstance(k, str) else tuple(k) for k in params["feature_kinds"]
            ]
        params["hidden"] = tuple(params["hidden"])
        if device is not None:
            params["device"] = device
        self = cls(**params)
        self.device_ = resolve_device(self.device)
        self.transform_ = QuantileGaussian.from_state_dict(ckpt["transform"])
        config = DenoiserConfig(**ckpt["network_config"])
        self.network_ = _empty_network(config)
        self.network_.load_state_dict(ckpt["weights"])
        self.network_.to(self.device_).eval()
        self.n_features_in_ = config.d_in
        fit = ckpt["fit"]
        self.steps_, self.loss_ = int(fit["steps"]), float(fit["loss"])
        self.fit_seconds_ = float(fit["fit_seconds"])
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise RuntimeError("TabularDiffusion is not fitted; call fit(X) first")


def _empty_network(config: DenoiserConfig) -> Denoiser:
    """A CPU network with uninitialised weights.

    Built on the meta device so that nn.Linear's default init never runs: it would draw
    from (and advance) the caller's global RNG, only to be overwritten.
    """
    with torch.device("meta"):
        net = Denoiser(config)
    return net.to_empty(device="cpu")
