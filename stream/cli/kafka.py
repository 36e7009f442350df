"""``fraudstream kafka start|stop|status|fetch``: the local single-node KRaft broker."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..config import Settings
from .options import env

__all__ = ["register"]


def register(subparsers: Any, settings: Settings) -> None:
    p = subparsers.add_parser("kafka", help="run the local single-node Kafka broker (KRaft)")
    p.add_argument("action", choices=["start", "stop", "status", "fetch"])
    p.add_argument("--port", type=int, default=settings.kafka_port,
                   help=f"listener port (default %(default)s, {env('kafka_port')})")
    p.add_argument("--data-dir", default=str(settings.kafka_data_dir),
                   help=f"KRaft data dir (default %(default)s, {env('kafka_data_dir')})")
    p.add_argument("--secure", action="store_true",
                   help="start: SASL_SSL (SCRAM-SHA-512) with a CA, certificate and passwords "
                        "made in the data dir, and ACLs (docs/security.md); a data dir keeps "
                        "the mode it was first started with")
    p.set_defaults(handler=run)


def _broker(args: argparse.Namespace, settings: Settings):
    from ..kafka_local import LocalBroker

    return LocalBroker(
        data_dir=Path(args.data_dir or settings.kafka_data_dir),
        kafka_home=settings.kafka_home,
        port=args.port,
        secure=True if getattr(args, "secure", False) else None,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..kafka_jars import BrokerError, ensure_jars

    try:
        if args.action == "fetch":
            libs = ensure_jars(settings.kafka_home)
            print(f"kafka jars ready in {libs}")
            return 0
        broker = _broker(args, settings)
        if args.action == "start":
            status = broker.start(progress=lambda m: print(m, file=sys.stderr))
            print(status.describe())
            if broker.secure:
                from ..kafka_secure import ROLES, role_acls

                broker.grant([a for role in ROLES for a in role_acls(settings, role)])
                files = broker.secure_files
                print(f"SASL_SSL (SCRAM-SHA-512), CA {files.cafile}; ACLs granted to "
                      f"{', '.join(ROLES)} for app id {settings.app_id!r} (docs/security.md)")
                print("point a client at it with one principal's settings (files are 0600):")
                for user in ("admin", *ROLES):
                    print(f"  set -a; . {files.env_file(user)}; set +a")
            else:
                print(f"export FRAUDSTREAM_BROKER_URL=kafka://{status.bootstrap}")
        elif args.action == "stop":
            print("kafka stopped" if broker.stop() else "kafka was not running")
        else:
            status = broker.status()
            print(status.describe())
            return 0 if status.running else 3
    except BrokerError as exc:
        print(f"fraudstream kafka {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
