"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) for tests and demo.

The broker's jars come from Maven Central through ``deploy/kafka/pom.xml`` into a cache
directory outside the repository, once. ``start`` formats KRaft storage on first use, launches
``kafka.Kafka`` with ``java``, and waits until the broker answers a metadata request; ``stop``
sends SIGTERM (controlled shutdown) and waits for the JVM to exit, SIGKILL as a last resort.

Version choice: Kafka 3.9.1 is the last 3.x line. It runs KRaft without ZooKeeper and still
accepts every protocol version that aiokafka (under faust-streaming) and kafka-python speak;
Kafka 4.0 removed old protocol versions (KIP-896), which older client releases still send.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KAFKA_VERSION",
    "BrokerError",
    "BrokerStatus",
    "LocalBroker",
    "ensure_jars",
    "free_port",
    "port_free",
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
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dir}
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
"""


class LocalBroker:
    """One local broker rooted at ``data_dir`` (its KRaft logs, config, pid and port files)."""

    def __init__(self, data_dir: Path, kafka_home: Path, port: int | None = None, heap_mb: int = 768):
        self.data_dir = Path(data_dir)
        self.kafka_home = Path(kafka_home)
        self.port = port
        self.heap_mb = heap_mb

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
        props = self.data_dir / "server.properties"
        props.write_text(
            _SERVER_PROPERTIES.format(port=port, controller_port=controller_port, log_dir=log_dir)
        )
        log4j = self.data_dir / "log4j.properties"
        log4j.write_text(_LOG4J.format(log_file=self.log_file))
        classpath = str(libs / "*")
        jvm = [java, f"-Xmx{self.heap_mb}m", f"-Xms{min(self.heap_mb, 256)}m",
               f"-Dlog4j.configuration=file:{log4j}", "-cp", classpath]
        if not (log_dir / "meta.properties").exists():
            cluster_id = _random_cluster_id()
            fmt = subprocess.run(
                # `--cluster-id=ID`: a random id may start with "-", which argparse would take as a flag
                jvm + ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props)],
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
            if metadata_ok(bootstrap):
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


def metadata_ok(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """Whether a broker at ``bootstrap`` answers a metadata request (via kafka-python)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
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
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _random_cluster_id() -> str:
    """A KRaft cluster id: a UUID in URL-safe base64 without padding (what StorageTool makes)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
