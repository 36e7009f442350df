"""The Kafka broker's jars (resolved from Maven Central once) and the Java that runs them.

``deploy/kafka/pom.xml`` pins the version; :data:`KAFKA_VERSION` mirrors it. See
:mod:`~.kafka_local` for why 3.9.1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["KAFKA_VERSION", "BrokerError", "ensure_jars", "find_java"]

KAFKA_VERSION = "3.9.1"
_POM = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "pom.xml"
_READY_MARKER = ".complete"


class BrokerError(RuntimeError):
    """The local broker cannot be provided; the message says what to do."""




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
