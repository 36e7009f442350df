"""``fraudstream models list|show|promote|rollback|shadow`` and ``fraudstream retrain``."""

from __future__ import annotations

import argparse
import json
import math
import time

from ..models.features import feature_names, schema_hash
from ..models.registry import ArtifactError, Registry
from .announce import announce, request_retrain
from .config import Settings

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction, settings: Settings) -> None:
    models = sub.add_parser("models", help="the model registry: list, show, promote, roll back")
    models.add_argument("--registry", default=str(settings.model_registry),
                        help="registry directory (default %(default)s, env FRAUDSTREAM_MODEL_REGISTRY)")
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every version, newest last")
    show = actions.add_parser("show", help="a version's metadata and checksum verification")
    show.add_argument("version", nargs="?", help="default: the champion")
    promote = actions.add_parser("promote", help="make a version the champion and announce it")
    promote.add_argument("version")
    promote.add_argument("--reason", default="promoted by hand")
    rollback = actions.add_parser("rollback", help="return to the previous champion")
    rollback.add_argument("--reason", default="rolled back by hand")
    shadow = actions.add_parser("shadow", help="score a version in shadow (never decides)")
    shadow.add_argument("version", nargs="?")
    shadow.add_argument("--clear", action="store_true", help="remove the shadow model")
    models.set_defaults(handler=cmd_models)

    retrain = sub.add_parser("retrain", help="ask the running trainer for a cycle now")
    retrain.add_argument("--reason", default="requested from the command line")
    retrain.set_defaults(handler=cmd_retrain)

    trainer = sub.add_parser("trainer", help="run the background trainer (one process)")
    trainer.add_argument("--once", action="store_true",
                         help="rebuild the window, run one cycle, exit (status 1 if it failed)")
    trainer.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    trainer.set_defaults(handler=cmd_trainer)


def cmd_trainer(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from .trainer import run_trainer

    logging.basicConfig(level=args.loglevel.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_trainer(settings, once=args.once)


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    request_id = request_retrain(settings, args.reason)
    print(f"retrain requested (id {request_id}) on {settings.topics.control}; the trainer logs "
          "the cycle and counts it in fraudstream_trainer_cycles_total")
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    registry = Registry(args.registry, keep=settings.trainer_keep_versions)
    schema = schema_hash(feature_names(settings.extra_features, settings.feature_set))
    try:
        if args.action == "list":
            return _list(registry)
        if args.action == "show":
            return _show(registry, args.version or registry.champion())
        if args.action == "promote":
            state = registry.set_champion(args.version, args.reason, schema)
            announce(settings, {**registry.announcement(args.version), "action": "manual",
                                "reason": args.reason})
            print(f"champion is now {state['version']} (announced on {settings.topics.model_updates})")
            return 0
        if args.action == "rollback":
            state = registry.rollback(args.reason)
            announce(settings, {**registry.announcement(state["version"]), "action": "rollback",
                                "reason": args.reason})
            print(f"rolled back: champion is now {state['version']} "
                  f"(announced on {settings.topics.model_updates})")
            return 0
        if args.action == "shadow":
            if args.clear:
                announce(settings, {"version": None, "artifact": None, "sha256": None,
                                    "metrics": {}, "role": "shadow", "action": "clear",
                                    "reason": "cleared by hand", "at": time.time()})
                print("shadow model cleared")
                return 0
            if not args.version:
                print("fraudstream models shadow: give a VERSION or --clear")
                return 2
            registry.verify(args.version, schema)
            announce(settings, {**registry.announcement(args.version, role="shadow"),
                                "action": "shadow", "reason": "deployed in shadow by hand"})
            print(f"{args.version} deployed in shadow")
            return 0
    except ArtifactError as exc:
        print(f"fraudstream models {args.action}: {exc}")
        return 1
    return 2


def _list(registry: Registry) -> int:
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
              f"{_f(h.get('challenger'))} {_f(h.get('champion'))} {_f(h.get('challenger_no_synthetic'), 10)}  "
              f"{_interval(gains.get('challenger_vs_champion')):<28} "
              f"{_interval(synthetic, at_ratio):<32} "
              f"{(report.get('synthetic') or {}).get('verdict', '')}")
    print(_ledger_line(newest))
    return 0


def _interval(gain: dict | None, suffix: str | None = None) -> str:
    """``+0.0123 [-0.0040, +0.0290]``: a gain and its interval, or n/a."""
    if not gain or gain.get("estimate") is None:
        return "n/a"
    return (f"{gain['estimate']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]"
            + (suffix or ""))


def _ledger_line(meta: dict | None) -> str:
    """The augmentation ledger as the newest version left it."""
    ledger = (meta or {}).get("ledger") or {}
    summary = ledger.get("summary") or {}
    if not summary.get("n"):
        return "augmentation ledger: no measured cycle yet"
    synthesis = ledger.get("synthesis") or {}
    return (f"augmentation ledger: synthetic rows' AP gain {summary['gain']:+.4f} "
            f"[{summary['low']:+.4f}, {summary['high']:+.4f}] over the last {summary['n']} "
            f"measured cycle(s); last cycle: synthesis {'on' if synthesis.get('on') else 'off'} "
            f"({synthesis.get('reason', '')})")


def _show(registry: Registry, version: str | None) -> int:
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


def _f(metrics: dict | None, width: int = 9) -> str:
    value = (metrics or {}).get("average_precision")
    text = "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
    return f"{text:>{width}}"
