"""``fraudstream models list|show|promote|rollback|shadow``: the model registry by hand.

A promotion, rollback or shadow deployment changes the registry first and then announces
it on ``model-updates``, as the trainer does; the workers follow the announcement.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ...models.features import feature_names, schema_hash
from ...models.registry import ArtifactError, Registry
from ..announce import announce
from ..config import Settings
from ..registry_view import list_versions, show_version
from .options import env

__all__ = ["register"]


def register(subparsers: Any, settings: Settings) -> None:
    p = subparsers.add_parser("models", help="the model registry: list, show, promote, roll back")
    p.add_argument("--registry", default=str(settings.model_registry),
                   help=f"registry directory (default %(default)s, {env('model_registry')})")
    actions = p.add_subparsers(dest="action", required=True)
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
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    registry = Registry(args.registry, keep=settings.trainer_keep_versions)
    schema = schema_hash(feature_names(settings.extra_features, settings.feature_set))
    try:
        if args.action == "list":
            return list_versions(registry)
        if args.action == "show":
            return show_version(registry, args.version or registry.champion())
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
            return _shadow(args, settings, registry, schema)
    except ArtifactError as exc:
        print(f"fraudstream models {args.action}: {exc}")
        return 1
    return 2


def _shadow(args: argparse.Namespace, settings: Settings, registry: Registry, schema: str) -> int:
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
