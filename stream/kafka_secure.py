"""A secure local broker's credentials and grants: its CA, certificate and passwords
(:class:`SecureFiles`, under ``<data_dir>/secure``), the client settings that use them
(:func:`client_env`) and each role's minimal ACLs (:func:`role_acls`). See docs/security.md.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .kafka_jars import BrokerError

__all__ = ["ROLES", "SecureFiles", "client_env", "role_acls", "write_private"]

ROLES = ("worker", "trainer")
"""The SCRAM principals a secure broker is made with besides the super user ``admin``."""


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only (created 0600, never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class SecureFiles:
    """Where a secure broker keeps its CA, certificate and passwords (``<data_dir>/secure``)."""

    root: Path

    @property
    def cafile(self) -> Path:
        return self.root / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.root / "broker.p12"

    @property
    def passwords_file(self) -> Path:
        return self.root / "passwords.json"

    def env_file(self, user: str) -> Path:
        return self.root / f"client-{user}.env"

    def passwords(self) -> dict[str, str]:
        return json.loads(self.passwords_file.read_text())

    def ready(self) -> bool:
        return all(p.exists() for p in (self.cafile, self.keystore, self.passwords_file))

    def make(self, progress=print) -> None:
        """Passwords, a CA and the broker's certificate (SAN 127.0.0.1, localhost), once."""
        if self.ready():
            return
        openssl = shutil.which("openssl")
        if not openssl:
            raise BrokerError("`openssl` not found: the secure broker makes its CA and certificate "
                              "with it (Debian/Ubuntu: `apt-get install openssl`).")
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        progress(f"making a CA, the broker's certificate and passwords in {self.root} ...")
        pw = {user: secrets.token_urlsafe(24) for user in ("admin", *ROLES)}
        store = secrets.token_urlsafe(24)
        r = self.root
        ext = r / "broker-ext.cnf"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                       "basicConstraints=critical,CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth,clientAuth\n"
                       "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
        steps = [
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "825",
             "-keyout", str(r / "ca.key"), "-out", str(self.cafile),
             "-subj", "/CN=fraudstream local CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-keyout", str(r / "broker.key"), "-out", str(r / "broker.csr"), "-subj", "/CN=localhost"],
            [openssl, "x509", "-req", "-sha256", "-days", "825", "-in", str(r / "broker.csr"),
             "-CA", str(self.cafile), "-CAkey", str(r / "ca.key"), "-CAcreateserial",
             "-extfile", str(ext), "-out", str(r / "broker.pem")],
            # The password goes through the environment, not argv (which `ps` shows).
            [openssl, "pkcs12", "-export", "-in", str(r / "broker.pem"), "-inkey", str(r / "broker.key"),
             "-certfile", str(self.cafile), "-name", "broker", "-out", str(self.keystore),
             "-passout", "env:FRAUDSTREAM_KEYSTORE_PASSWORD"],
        ]
        old = os.umask(0o077)
        try:
            for cmd in steps:
                res = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                     env={**os.environ, "FRAUDSTREAM_KEYSTORE_PASSWORD": store})
                if res.returncode != 0:
                    raise BrokerError(f"{' '.join(cmd[:3])} failed:\n{res.stdout}{res.stderr}")
        finally:
            os.umask(old)
        for name in ("broker.csr", "broker-ext.cnf"):
            (r / name).unlink(missing_ok=True)
        os.chmod(self.cafile, 0o644)  # the CA certificate is public; its key is not
        write_private(self.passwords_file, json.dumps({**pw, "_keystore": store}, indent=2) + "\n")

    def write_env_files(self, bootstrap: str) -> None:
        """One ``client-<user>.env`` per principal: the FRAUDSTREAM_* settings that use it."""
        for user, password in self.passwords().items():
            if user.startswith("_"):
                continue
            env = client_env(bootstrap, user, password, self.cafile)
            write_private(self.env_file(user), "".join(f"{k}={v}\n" for k, v in env.items()))


def client_env(bootstrap: str, user: str, password: str, cafile: Path) -> dict[str, str]:
    """The FRAUDSTREAM_* variables that point every fraudstream client at a SASL_SSL broker."""
    return {
        "FRAUDSTREAM_BROKER_URL": f"kafka://{bootstrap}",
        "FRAUDSTREAM_SECURITY_PROTOCOL": "SASL_SSL",
        "FRAUDSTREAM_SASL_MECHANISM": "SCRAM-SHA-512",
        "FRAUDSTREAM_SASL_USERNAME": user,
        "FRAUDSTREAM_SASL_PASSWORD": password,
        "FRAUDSTREAM_SSL_CAFILE": str(cafile),
    }


def role_acls(settings: Any, role: str, principal: str | None = None) -> list[Any]:
    """The minimal ACLs of ``role`` (``worker`` or ``trainer``) for ``settings``' topic names and
    app id, as kafka-python ``ACL`` objects (allow, any host). Found by starting from none and
    adding what the authorizer refused; docs/security.md says what each one is for."""
    from kafka.admin import (ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             ResourcePattern, ResourceType)

    from .topics import label_app_id, topic_specs

    t = settings.topics
    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    read, write, describe = ACLOperation.READ, ACLOperation.WRITE, ACLOperation.DESCRIBE
    literal, prefixed = ACLResourcePatternType.LITERAL, ACLResourcePatternType.PREFIXED
    if role == "worker":
        grants = [
            (topic, t.transactions, literal, read),
            (topic, t.labels, literal, read),
            (topic, t.model_updates, literal, read),     # the model follower (hot-swap)
            (topic, t.synthetic_frauds, literal, read),  # the model follower (online learner)
            (topic, t.scores, literal, write),
            (topic, t.transactions_dlq, literal, write),
            (topic, t.labels_dlq, literal, write),
            (topic, t.training_examples, literal, write),
            # repartition and changelog topics, and faust's leader topic: `<app_id>-*`
            (topic, f"{settings.app_id}-", prefixed, read),
            (topic, f"{settings.app_id}-", prefixed, write),
            (topic, f"{settings.app_id}-__assignor-__leader", literal, ACLOperation.CREATE),
            (group, settings.app_id, literal, read),
        ]
        labels = label_app_id(settings)
        if labels != settings.app_id:  # the label processes' own faust app and group
            grants += [
                (topic, f"{labels}-__assignor-__leader", literal, ACLOperation.CREATE),
                (group, labels, literal, read),
            ]
    elif role == "trainer":
        grants = [
            (topic, t.training_examples, literal, read),
            (topic, t.control, literal, read),
            (topic, t.model_updates, literal, write),
            (topic, t.synthetic_frauds, literal, write),
        ]
    else:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    # Both processes run `create_topics` at start: a topic they cannot see they try to create.
    # DESCRIBE (implied by READ and WRITE) on every other topic of `fraudstream topics list`
    # lets that check see them; it reads no data.
    covered = {name for _, name, pattern, _ in grants if pattern == literal}
    prefixes = [name for _, name, pattern, _ in grants if pattern == prefixed]
    grants += [(topic, spec.name, literal, describe) for spec in topic_specs(settings)
               if spec.name not in covered and not any(spec.name.startswith(p) for p in prefixes)]
    who = principal or f"User:{role}"
    return [ACL(who, "*", op, ACLPermissionType.ALLOW, ResourcePattern(kind, name, pattern))
            for kind, name, pattern, op in grants]
