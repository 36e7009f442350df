"""Create the `secure` compose profile's ACLs: exactly role_acls(settings, role) per role.

Run by the one-shot service kafka-secure-acls (docker-compose.yml) in the fraudstream image,
as the super user `admin`, after the broker is up: KRaft keeps ACLs in its metadata log, so
unlike the SCRAM users they cannot be written when the storage is formatted. What each role
may do comes from fraudstream.stream.kafka_secure.role_acls (the same list `fraudstream kafka
start --secure` grants and tests/stream/test_secure_kafka.py checks), for the topic names and
FRAUDSTREAM_APP_ID of this process's settings: give it the same FRAUDSTREAM_* variables as
the workers. Principal `User:<role>`: the SCRAM user kafka-init.sh made for that role.

    python grant-acls.py                 # create them (idempotent), print each one
    python grant-acls.py --print         # only print the equivalent kafka-acls.sh commands

Exit status 0 when every ACL exists afterwards, 1 when the broker refused one.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fraudstream.stream.config import load_settings
from fraudstream.stream.kafka_secure import ROLES, role_acls


def wanted(settings: Any, roles: tuple[str, ...] = ROLES) -> list[Any]:
    """Every role's ACLs (kafka-python ``ACL`` objects), in role order."""
    return [acl for role in roles for acl in role_acls(settings, role)]


def kafka_acls_command(acl: Any, bootstrap: str = "127.0.0.1:29092",
                       config: str = "/mnt/shared/config/internal-client.properties") -> str:
    """The kafka-acls.sh command that adds ``acl`` (run inside the kafka-secure container)."""
    pattern = acl.resource_pattern
    kind = pattern.resource_type.name.lower()
    return (f"/opt/kafka/bin/kafka-acls.sh --bootstrap-server {bootstrap} --command-config {config} "
            f"--add --allow-principal {acl.principal} --allow-host '{acl.host}' "
            f"--operation {_camel(acl.operation.name)} --{kind} '{pattern.resource_name}' "
            f"--resource-pattern-type {pattern.pattern_type.name.lower()}")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def describe(acl: Any) -> str:
    p = acl.resource_pattern
    return (f"{acl.principal} {acl.permission_type.name} {acl.operation.name} on "
            f"{p.resource_type.name} {p.pattern_type.name} {p.resource_name!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--print", action="store_true", dest="print_only",
                        help="print the kafka-acls.sh commands instead of creating the ACLs")
    args = parser.parse_args(argv)
    settings = load_settings()
    acls = wanted(settings)
    if args.print_only:
        for acl in acls:
            print(kafka_acls_command(acl))
        return 0

    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                             client_id="fraudstream-grant-acls", **settings.kafka_python_security())
    try:
        result = admin.create_acls(acls)
    finally:
        admin.close()
    for acl in result.get("succeeded", []):
        print(f"grant-acls: {describe(acl)}")
    failed = result.get("failed", [])  # kafka-python: the error of each ACL not created
    for error in failed:
        print(f"grant-acls: an ACL was refused: {error!r}", file=sys.stderr)
    print(f"grant-acls: {len(acls) - len(failed)}/{len(acls)} ACLs for {', '.join(ROLES)} "
          f"(app id {settings.app_id!r})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
