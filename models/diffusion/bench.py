"""Measured fit and sampling speed of ``TabularDiffusion`` on synthetic data.

A program that prints numbers (tests assert behaviour, not speed)::

    python -m fraudstream.models.diffusion.bench --rows 5000 --features 20 --steps 500
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any

import numpy as np
import torch

from .model import TabularDiffusion, device_name, resolve_device

__all__ = ["benchmark", "synthetic_table"]


def synthetic_table(n_rows: int, n_features: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """A fraud-like table: correlated skewed amounts, counts, flags and ratios, with kinds."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_rows, n_features)) @ rng.normal(
        scale=0.4, size=(n_features, n_features)
    )
    # Column j's kind cycles through the four kinds; each is a transform of one latent.
    kinds = [("continuous", "integer", "binary", "bounded")[j % 4] for j in range(n_features)]
    cols = []
    for z, kind in zip(latent.T, kinds, strict=True):
        if kind == "continuous":
            cols.append(np.exp(z))  # log-normal, like amounts
        elif kind == "integer":
            cols.append(rng.poisson(np.exp(0.5 * z)).astype(float))
        elif kind == "binary":
            cols.append((z > 0.3).astype(float))
        else:
            cols.append(1.0 / (1.0 + np.exp(-z)))
    return np.column_stack(cols).astype(np.float64), kinds


def benchmark(
    n_rows: int = 5000,
    n_features: int = 20,
    steps: int = 500,
    device: str = "auto",
    *,
    n_samples: int = 20_000,
    seed: int = 0,
    **model_kwargs: Any,
) -> dict[str, Any]:
    """Fit on a synthetic table and time sampling; every number is measured.

    Returns ``fit_seconds``, ``fit_rows_per_second`` (training rows seen per second),
    ``samples_per_second`` for both samplers, ``peak_memory_bytes`` (CUDA:
    ``torch.cuda.max_memory_allocated`` over fit and sampling; CPU: the process's peak
    resident set size, ``ru_maxrss``, which includes everything the process did before)
    and the device's name.
    """
    dev = resolve_device(device)
    X, kinds = synthetic_table(n_rows, n_features, seed)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    model = TabularDiffusion(kinds, device=dev, seed=seed, steps=steps, **model_kwargs).fit(X)
    batch = model.batch_size or (4096 if dev.type == "cuda" else 256)

    result: dict[str, Any] = {
        "device": str(dev),
        "device_name": device_name(dev),
        "torch_threads": torch.get_num_threads(),
        "n_rows": n_rows,
        "n_features": n_features,
        "steps": steps,
        "batch_size": batch,
        "fit_seconds": model.fit_seconds_,
        "fit_rows_per_second": steps * batch / model.fit_seconds_,
        "final_loss": model.loss_,
        "n_samples": n_samples,
    }
    model.sample(min(n_samples, 1024), seed=seed)  # warm-up: first-call allocations, kernels
    for sampler, n_steps in (("ancestral", model.n_steps), ("ddim", model.ddim_steps)):
        start = time.perf_counter()
        model.sample(n_samples, seed=seed, sampler=sampler)  # returns on host: synced
        seconds = time.perf_counter() - start
        result[f"{sampler}_steps"] = n_steps
        result[f"{sampler}_samples_per_second"] = n_samples / seconds
    if dev.type == "cuda":
        result["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(dev))
        result["peak_memory_kind"] = "torch.cuda.max_memory_allocated"
    else:
        # Linux reports ru_maxrss in KiB, macOS in bytes.
        scale = 1 if sys.platform == "darwin" else 1024
        result["peak_memory_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        result["peak_memory_kind"] = "ru_maxrss (process peak RSS)"
    return result



def main(argv: list[str] | None = None) -> None:
    """Run ``benchmark`` with command-line sizes and print its JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--samples", type=int, default=20_000)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = benchmark(args.rows, args.features, args.steps, args.device, n_samples=args.samples)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
