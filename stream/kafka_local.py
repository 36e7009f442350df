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

import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .kafka_config import LOG4J, PLAINTEXT_LISTENERS, SECURE_LISTENERS, SERVER_PROPERTIES
from .kafka_jars import KAFKA_VERSION, BrokerError, ensure_jars, find_java
from .kafka_secure import ROLES, SecureFiles, client_env, role_acls, write_private

__all__ = [
    "KAFKA_VERSION",
    "BrokerError",
    "BrokerStatus",
    "LocalBroker",
    "ROLES",
    "SecureFiles",
    "client_env",
    "ensure_jars",
    "find_java",
    "free_port",
    "metadata_ok",
    "port_free",
    "role_acls",
]


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
            listeners = SECURE_LISTENERS.format(
                port=port, controller_port=controller_port, admin_password=pw["admin"],
                store_password=pw["_keystore"], keystore=self.secure_files.keystore,
                cafile=self.secure_files.cafile)
        else:
            listeners = PLAINTEXT_LISTENERS.format(port=port, controller_port=controller_port)
        props = self.data_dir / "server.properties"
        write_private(props, SERVER_PROPERTIES.format(
            controller_port=controller_port, listeners=listeners, log_dir=log_dir))
        log4j = self.data_dir / "log4j.properties"
        log4j.write_text(LOG4J.format(log_file=self.log_file, security_log_file=self.security_log_file))
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
