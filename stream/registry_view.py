"""The model registry as people read it: the ``fraudstream models list`` table, one
version's metadata (``models show``), and the gain intervals and augmentation-ledger line
that the demo prints too."""

from __future__ import annotations

import json

from ..models.formats import fmt_interval, fmt_number
from ..models.registry import ArtifactError, Registry

__all__ = ["gain_interval", "ledger_line", "list_versions", "show_version"]


def list_versions(registry: Registry) -> int:
    """Print every version, newest last, with its holdout AP and gains; returns 0."""
    versions = registry.versions()
    if not versions:
        print(f"no versions in {registry.root}")
        return 0
    champion = registry.champion()
    print(f"{'version':<26} {'created (UTC)':<20} {'role':<10} {'AP chall.':>9} {'AP champ.':>9} "
          f"{'AP no syn.':>10}  {'gain vs champion [interval]':<28} {'synthetic gain [interval]':<32}"
          " synthetic")
    newest = None
    for v in versions:
        try:
            meta = registry.info(v).metadata
        except ArtifactError as exc:
            print(f"{v:<26} unreadable: {exc}")
            continue
        newest = meta
        report = meta.get("report") or {}
        h = report.get("holdout") or {}
        gains = report.get("comparisons") or {}
        synthetic = gains.get("synthetic")
        at_ratio = f" x{synthetic['ratio']:g}" if synthetic and "ratio" in synthetic else ""
        role = "champion" if v == champion else meta.get("status", "")
        print(f"{v:<26} {meta.get('created_at_utc', '')[:19]:<20} {role:<10} "
              f"{_ap(h.get('challenger'))} {_ap(h.get('champion'))} "
              f"{_ap(h.get('challenger_no_synthetic'), 10)}  "
              f"{gain_interval(gains.get('challenger_vs_champion')):<28} "
              f"{gain_interval(synthetic, at_ratio):<32} "
              f"{(report.get('synthetic') or {}).get('verdict', '')}")
    print(ledger_line(newest))
    return 0


def show_version(registry: Registry, version: str | None) -> int:
    """Print a version's metadata and whether its files match their sha256; 1 if none."""
    if not version:
        print(f"no champion in {registry.root}")
        return 1
    info = registry.info(version)
    try:
        registry.verify(version)
        verified = "ok (every file matches its sha256)"
    except ArtifactError as exc:
        verified = f"FAILED: {exc}"
    print(json.dumps({**info.metadata, "verification": verified}, indent=2, sort_keys=True))
    return 0


def gain_interval(gain: dict | None, suffix: str | None = None) -> str:
    """``+0.0123 [-0.0040, +0.0290]``: a gain and its interval, or n/a."""
    if not gain or gain.get("estimate") is None:
        return "n/a"
    interval = {"mean": gain["estimate"], "low": gain["low"], "high": gain["high"]}
    return fmt_interval(interval, 4, signed=True) + (suffix or "")


def ledger_line(meta: dict | None) -> str:
    """The augmentation ledger as the version with metadata ``meta`` left it."""
    ledger = (meta or {}).get("ledger") or {}
    summary = ledger.get("summary") or {}
    if not summary.get("n"):
        return "augmentation ledger: no measured cycle yet"
    synthesis = ledger.get("synthesis") or {}
    gain = fmt_interval({"mean": summary["gain"], "low": summary["low"], "high": summary["high"]},
                        4, signed=True)
    return (f"augmentation ledger: synthetic rows' AP gain {gain} over the last {summary['n']} "
            f"measured cycle(s); last cycle: synthesis {'on' if synthesis.get('on') else 'off'} "
            f"({synthesis.get('reason', '')})")


def _ap(metrics: dict | None, width: int = 9) -> str:
    value = (metrics or {}).get("average_precision")
    return f"{fmt_number(value, 4):>{width}}"
