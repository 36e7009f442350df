"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) for tests and demo.

The broker's jars come from Maven Central through ``deploy/kafka/pom.xml`` into a cache
directory outside the repository, once. ``start`` formats KRaft storage on first use, launches
``kafka.Kafka`` with ``java``, and waits until the broker answers a metadata request; ``stop``
sends SIGTERM (controlled shutdown) and waits for the JVM to exit, SIGKILL as a last resort.

``secure=True`` runs the same broker with one SASL_SSL listener (SCRAM-SHA-512) and the KRaft
``StandardAuthorizer``; the CA, the broker's certificate and every password are made at first
start into ``<data_dir>/secure`` (mode 0700, files 0600) and never leave it. See docs/security.md.

Version choice: Kafka 3.9.1 is the last 3.x line. It runs KRaft without ZooKeeper and still
accepts every protocol version that aiokafka (under faust-streaming) and kafka-python speak;
Kafka 4.0 removed old protocol versions (KIP-896), which older client releases still send.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "KAFKA_VERSION",
    "BrokerError",
    "BrokerStatus",
    "LocalBroker",
    "ROLES",
    "SecureFiles",
    "ensure_jars",
    "free_port",
    "port_free",
    "role_acls",
]

KAFKA_VERSION = "3.9.1"
_POM = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "pom.xml"
_READY_MARKER = ".complete"


class BrokerError(RuntimeError):
    """The local broker cannot be provided; the message says what to do."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str | None
    data_dir: Path

    def describe(self) -> str:
        if self.running:
            return f"kafka {KAFKA_VERSION} is up at {self.bootstrap} (pid {self.pid}, data {self.data_dir})"
        return f"kafka is not running (data dir {self.data_dir})"


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    text = out.stderr + out.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        raise BrokerError(f"could not read the Java version from `{java} -version`: {text.strip()!r}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def find_java() -> str:
    """The ``java`` executable (JAVA_HOME first), checked to be 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if not java:
        raise BrokerError(
            "Java not found: the local Kafka broker needs a JDK 17 or newer "
            "(Debian/Ubuntu: `apt-get install openjdk-17-jdk-headless`; or set JAVA_HOME)."
        )
    major = _java_major(java)
    if major < 17:
        raise BrokerError(f"{java} is Java {major}; Kafka {KAFKA_VERSION} here needs Java 17 or newer.")
    return java


def ensure_jars(kafka_home: Path, *, progress=print) -> Path:
    """Resolve the broker's jars from Maven Central into ``kafka_home/<version>/libs`` once."""
    libs = kafka_home / KAFKA_VERSION / "libs"
    if (libs / _READY_MARKER).exists():
        return libs
    mvn = shutil.which("mvn")
    if not mvn:
        raise BrokerError(
            "Maven (`mvn`) not found: it resolves the Kafka broker's jars from Maven Central "
            "(Debian/Ubuntu: `apt-get install maven`)."
        )
    if not _POM.exists():
        raise BrokerError(f"{_POM} is missing; run from a checkout of fraudstream")
    find_java()
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    progress(f"resolving Apache Kafka {KAFKA_VERSION} jars from Maven Central into {libs} ...")
    cmd = [
        mvn, "-q", "-B", "-f", str(_POM),
        f"-Dkafka.version={KAFKA_VERSION}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            "mvn could not resolve the Kafka jars:\n" + (result.stdout + result.stderr)[-3000:]
        )
    jars = list(tmp.glob("*.jar"))
    if not any(j.name.startswith(f"kafka_2.13-{KAFKA_VERSION}") for j in jars):
        raise BrokerError(f"mvn finished but kafka_2.13-{KAFKA_VERSION}.jar is not in {tmp}")
    (tmp / _READY_MARKER).write_text(f"{len(jars)} jars\n")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)  # the marker makes a half-copied cache impossible to mistake for a full one
    progress(f"resolved {len(jars)} jars")
    return libs


_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
controller.listener.names=CONTROLLER
{listeners}log.dirs={log_dir}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# single node: let consumer groups form at once instead of waiting for more members
group.initial.rebalance.delay.ms=0
log.retention.check.interval.ms=60000
message.max.bytes=2097152
"""

_PLAINTEXT_LISTENERS = """\
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
"""

# Clients and the broker itself authenticate with SCRAM-SHA-512 over TLS. The controller
# listener uses SASL PLAIN over TLS: SCRAM credentials live in the metadata log the controller
# serves, so they cannot authenticate the broker to its own controller (KIP-631/KIP-900).
# Both super-user logins are `admin`; every other principal gets only its ACLs.
_SECURE_LISTENERS = """\
listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=SASL_SSL://127.0.0.1:{port}
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:SASL_SSL,SASL_SSL:SASL_SSL
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="{admin_password}";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="{admin_password}" user_admin="{admin_password}";
ssl.keystore.type=PKCS12
ssl.keystore.location={keystore}
ssl.keystore.password={store_password}
ssl.key.password={store_password}
ssl.truststore.type=PEM
ssl.truststore.location={cafile}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
allow.everyone.if.no.acl.found=false
"""

_LOG4J = """\
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log_file}
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
# Secure mode: the authorizer's refusals (what to grant is read from here) and failed logins.
log4j.appender.authorizer=org.apache.log4j.RollingFileAppender
log4j.appender.authorizer.File={security_log_file}
log4j.appender.authorizer.MaxFileSize=20MB
log4j.appender.authorizer.MaxBackupIndex=1
log4j.appender.authorizer.layout=org.apache.log4j.PatternLayout
log4j.appender.authorizer.layout.ConversionPattern=[%d] %m%n
log4j.logger.kafka.authorizer.logger=INFO, authorizer
log4j.additivity.kafka.authorizer.logger=false
log4j.logger.org.apache.kafka.common.network.Selector=INFO, authorizer
log4j.additivity.org.apache.kafka.common.network.Selector=false
"""


ROLES = ("worker", "trainer")
"""The SCRAM principals a secure broker is made with besides the super user ``admin``."""


def _write_private(path: Path, text: str) -> None:
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
        _write_private(self.passwords_file, json.dumps({**pw, "_keystore": store}, indent=2) + "\n")

    def write_env_files(self, bootstrap: str) -> None:
        """One ``client-<user>.env`` per principal: the FRAUDSTREAM_* settings that use it."""
        for user, password in self.passwords().items():
            if user.startswith("_"):
                continue
            env = client_env(bootstrap, user, password, self.cafile)
            _write_private(self.env_file(user), "".join(f"{k}={v}\n" for k, v in env.items()))


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

    from .topics import topic_specs

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


class LocalBroker:
    """One local broker rooted at ``data_dir`` (its KRaft logs, config, pid and port files)."""

    def __init__(self, data_dir: Path, kafka_home: Path, port: int | None = None, heap_mb: int = 768,
                 secure: bool | None = None):
        self.data_dir = Path(data_dir)
        self.kafka_home = Path(kafka_home)
        self.port = port
        self.heap_mb = heap_mb
        # None: whatever this data dir was formatted as (so `stop`/`status` need no flag).
        self.secure = self._secure_marker.exists() if secure is None else secure
        self.secure_files = SecureFiles(self.data_dir / "secure")

    @property
    def _secure_marker(self) -> Path:
        return self.data_dir / "secure" / "passwords.json"

    def admin_security(self) -> dict[str, Any]:
        """kafka-python keyword arguments that log in as the super user (empty when plaintext)."""
        if not self.secure:
            return {}
        return {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": "admin",
                "sasl_plain_password": self.secure_files.passwords()["admin"],
                "ssl_cafile": str(self.secure_files.cafile)}

    def client_env(self, user: str) -> dict[str, str]:
        """FRAUDSTREAM_* variables for a client logging in as ``user`` (a secure broker)."""
        status = self.status()
        port = self._read_int(self._port_file)
        bootstrap = status.bootstrap or f"127.0.0.1:{port}"
        return client_env(bootstrap, user, self.secure_files.passwords()[user], self.secure_files.cafile)

    def grant(self, acls: list[Any]) -> None:
        """Create ``acls`` (kafka-python ``ACL`` objects) as the super user; raises on a refusal."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.status().bootstrap, **self.admin_security())
        try:
            result = admin.create_acls(acls)
        finally:
            admin.close()
        if result.get("failed"):
            raise BrokerError(f"creating ACLs failed: {result['failed']}")

    def revoke(self, acls: list[Any]) -> None:
        """Delete exactly ``acls`` (as the super user)."""
        from kafka import KafkaAdminClient
        from kafka.admin import ACLFilter, ResourcePatternFilter

        filters = [ACLFilter(a.principal, a.host, a.operation, a.permission_type,
                             ResourcePatternFilter(a.resource_pattern.resource_type,
                                                   a.resource_pattern.resource_name,
                                                   a.resource_pattern.pattern_type))
                   for a in acls]
        admin = KafkaAdminClient(bootstrap_servers=self.status().bootstrap, **self.admin_security())
        try:
            admin.delete_acls(filters)
        finally:
            admin.close()

    # -- files ---------------------------------------------------------------------------
    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def _port_file(self) -> Path:
        return self.data_dir / "broker.port"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def security_log_file(self) -> Path:
        """Secure mode: the authorizer's refusals (principal, operation, resource) and failed
        authentications, one line each."""
        return self.data_dir / "security.log"

    def _read_int(self, path: Path) -> int | None:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    # -- state ---------------------------------------------------------------------------
    def status(self) -> BrokerStatus:
        pid = self._read_int(self._pid_file)
        port = self._read_int(self._port_file)
        running = pid is not None and _alive(pid)
        bootstrap = f"127.0.0.1:{port}" if running and port else None
        return BrokerStatus(running, pid if running else None, bootstrap, self.data_dir)

    def start(self, timeout: float = 90.0, progress=print) -> BrokerStatus:
        """Start the broker (idempotent) and wait until it answers a metadata request."""
        current = self.status()
        if current.running:
            return current
        libs = ensure_jars(self.kafka_home, progress=progress)
        java = find_java()
        port = self.port or self._read_int(self._port_file) or 9092
        if not port_free(port):
            raise BrokerError(f"port {port} is already in use; choose another with --port")
        controller_port = free_port()
        log_dir = self.data_dir / "kraft-logs"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        formatted = (log_dir / "meta.properties").exists()
        if formatted and self.secure != self._secure_marker.exists():
            raise BrokerError(
                f"{self.data_dir} holds a {'secure' if self._secure_marker.exists() else 'plaintext'} "
                "broker; use another --data-dir to switch (SCRAM users are made when storage is formatted)")
        if self.secure:
            self.secure_files.make(progress)
            pw = self.secure_files.passwords()
            listeners = _SECURE_LISTENERS.format(
                port=port, controller_port=controller_port, admin_password=pw["admin"],
                store_password=pw["_keystore"], keystore=self.secure_files.keystore,
                cafile=self.secure_files.cafile)
        else:
            listeners = _PLAINTEXT_LISTENERS.format(port=port, controller_port=controller_port)
        props = self.data_dir / "server.properties"
        _write_private(props, _SERVER_PROPERTIES.format(
            controller_port=controller_port, listeners=listeners, log_dir=log_dir))
        log4j = self.data_dir / "log4j.properties"
        log4j.write_text(_LOG4J.format(log_file=self.log_file, security_log_file=self.security_log_file))
        classpath = str(libs / "*")
        jvm = [java, f"-Xmx{self.heap_mb}m", f"-Xms{min(self.heap_mb, 256)}m",
               f"-Dlog4j.configuration=file:{log4j}", "-cp", classpath]
        if not formatted:
            cluster_id = _random_cluster_id()
            # SCRAM users are records in the metadata log: KRaft takes them at format time
            # (StorageTool --add-scram, KIP-900), before any client can log in to add them.
            scram = [] if not self.secure else [
                f"--add-scram=SCRAM-SHA-512=[name={user},password={password}]"
                for user, password in self.secure_files.passwords().items() if not user.startswith("_")]
            fmt = subprocess.run(
                # `--cluster-id=ID`: a random id may start with "-", which argparse would take as a flag
                jvm + ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props)]
                + scram,
                capture_output=True, text=True, check=False,
            )
            if fmt.returncode != 0:
                raise BrokerError("formatting KRaft storage failed:\n" + fmt.stdout + fmt.stderr)
        out = open(self.data_dir / "broker.out", "ab")
        proc = subprocess.Popen(
            jvm + ["kafka.Kafka", str(props)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the CLI that started it; not killed by ^C there
        )
        self._pid_file.write_text(str(proc.pid))
        self._port_file.write_text(str(port))
        bootstrap = f"127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(
                    f"the broker exited with status {proc.returncode}; see {self.log_file} "
                    f"and {self.data_dir / 'broker.out'}"
                )
            if metadata_ok(bootstrap, security=self.admin_security()):
                if self.secure:
                    self.secure_files.write_env_files(bootstrap)
                return self.status()
            time.sleep(0.5)
        self.stop()
        raise BrokerError(f"the broker did not answer a metadata request within {timeout:.0f}s")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker; returns whether one was running. No java process is left behind."""
        pid = self._read_int(self._pid_file)
        if pid is None or not _alive(pid):
            self._pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self._pid_file.unlink(missing_ok=True)
        return True


def metadata_ok(bootstrap: str, timeout_s: float = 3.0, security: dict[str, Any] | None = None) -> bool:
    """Whether a broker at ``bootstrap`` answers a metadata request (via kafka-python);
    ``security``: kafka-python's security keyword arguments for a secure broker."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
            **(security or {}),
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not a running broker.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the JVM binds its listener: connections the stopped broker left in TIME_WAIT must
        # not keep it from its own port on restart; a live listener still makes bind fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _random_cluster_id() -> str:
    """A KRaft cluster id: a UUID in URL-safe base64 without padding (what StorageTool makes)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
