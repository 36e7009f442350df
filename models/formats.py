"""How results are written down: strict-JSON values, and numbers as text for tables and logs.

Reports (a refresh cycle's, the detection and augmentation studies') are JSON with no NaN:
:func:`jsonable` turns NaN and infinities into ``None``, and the formatters print ``n/a``
for either.

>>> jsonable({"ap": float("nan"), "n": np.int64(3), "ok": np.bool_(True), "xs": (1.5,)})
{'ap': None, 'n': 3, 'ok': True, 'xs': [1.5]}
>>> fmt_number(0.12345), fmt_number(None), fmt_number(0.5, 4, signed=True)
('0.123', 'n/a', '+0.5000')
>>> fmt_mean_std({"mean": 0.5, "std": 0.01})
'0.500 ± 0.010'
>>> fmt_interval({"mean": 0.02, "low": -0.01, "high": 0.05}, signed=True)
'+0.020 [-0.010, +0.050]'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["fmt_interval", "fmt_mean_std", "fmt_number", "jsonable"]


def jsonable(obj: Any) -> Any:
    """Plain Python values; NaN and infinities become ``None`` (JSON has no such numbers)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def fmt_number(value: Any, digits: int = 3, signed: bool = False) -> str:
    """``value`` with ``digits`` decimals (and a sign when ``signed``); ``n/a`` for None/NaN."""
    if _missing(value):
        return "n/a"
    return f"{value:{'+' if signed else ''}.{digits}f}"


def fmt_mean_std(stats: Mapping[str, Any], digits: int = 3, signed: bool = False) -> str:
    """``mean ± std`` of a ``{"mean", "std"}`` summary; ``n/a`` when the mean is missing."""
    if _missing(stats["mean"]):
        return "n/a"
    return f"{fmt_number(stats['mean'], digits, signed)} ± {fmt_number(stats['std'], digits)}"


def fmt_interval(stats: Mapping[str, Any], digits: int = 3, signed: bool = False) -> str:
    """``mean [low, high]`` of a ``{"mean", "low", "high"}`` summary; the mean alone when the
    interval is missing (one value), ``n/a`` when the mean is."""
    mean, low, high = stats["mean"], stats["low"], stats["high"]
    if _missing(mean):
        return "n/a"
    if _missing(low) or _missing(high):
        return fmt_number(mean, digits, signed)
    return (f"{fmt_number(mean, digits, signed)} [{fmt_number(low, digits, signed)}, "
            f"{fmt_number(high, digits, signed)}]")
