"""A load generator that leaves the cores to the service: a pacer paces, ``kcat`` produces.

A Python producer at 2,000 records/s takes most of a core on this kind of machine, and the
benchmark would measure the producer's contention as the worker's latency. ``kcat``
(librdkafka, in C) sends each ``key<TAB>value`` line it reads as one record, and a pacer in
front of it lets the lines through at the offered rate: ``pace`` (``deploy/pace/pace.c``,
built by ``make tools``), or Debian's ``pv -l -L``; both cost a few percent of one core.

Each record gets its timestamp from librdkafka when kcat hands it over (CreateTime), which is
what the worker's end-to-end histogram and the benchmark's latency are measured from, so the
shape of the arrivals is part of what is measured (:data:`ARRIVALS`):

- ``poisson`` (the default): ``pace -p``, exponential gaps, released each millisecond: the
  arrivals of many independent card terminals (measured at 2,000 lines/s: p99 29
  transactions per 10 ms);
- ``steady``: ``pace``, evenly spaced (20-22 per 10 ms at 2,000 lines/s);
- ``pv``: ``pv -L``, which does not pace line by line: it lets a tenth of a second's lines
  through at once (pv 1.6, measured here: 200 lines every 80-90 ms at ``-L 2000``), bursts no
  card network makes. :class:`PacedLoad` can split a load by key over several streams started
  a fraction of that period apart, so the broker sees smaller bursts closer together.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

from .config import Settings
from .kafka_clients import librdkafka_config

__all__ = ["LoadTools", "write_lines", "PacedProducer", "PacedLoad", "split_by_key", "PV_PERIOD_S",
           "Arrivals", "ARRIVALS"]

Arrivals = Literal["poisson", "steady", "pv"]
ARRIVALS: tuple[Arrivals, ...] = ("poisson", "steady", "pv")

#: How often ``pv -L`` lets lines through (pv 1.6: every 80-90 ms, measured here).
PV_PERIOD_S = 0.09

TOOLS_DIR = Path(os.environ.get("FRAUDSTREAM_TOOLS_DIR", Path.home() / ".cache/fraudstream/tools"))


@dataclass(frozen=True)
class LoadTools:
    """Where kcat and the pacers are, and the library path kcat needs."""

    kcat: Path
    pv: Path
    pace: Path
    lib_path: str

    @classmethod
    def find(cls, tools_dir: Path = TOOLS_DIR) -> "LoadTools":
        """The unpacked tools (``make tools``), else the system's; a clear error when missing."""
        unpacked = tools_dir / "kcat" / "usr" / "bin" / "kcat"
        if unpacked.exists():
            kcat, lib = unpacked, str(tools_dir / "kcat" / "usr" / "lib" / "x86_64-linux-gnu")
        elif shutil.which("kcat"):
            kcat, lib = Path(shutil.which("kcat")), ""
        else:
            raise RuntimeError("kcat not found: run `make tools` (unpacks Debian's kcat and pv "
                               f"into {tools_dir}) or install the kcat package")
        pv = tools_dir / "pv" / "usr" / "bin" / "pv"
        if not pv.exists():
            if not shutil.which("pv"):
                raise RuntimeError("pv not found: run `make tools` or install the pv package")
            pv = Path(shutil.which("pv"))
        pace = tools_dir / "pace" / "pace"
        if not pace.exists():
            raise RuntimeError(f"pace not found in {pace.parent}: run `make tools` (builds "
                               "deploy/pace/pace.c with cc)")
        return cls(kcat, pv, pace, lib)

    def pacer(self, rate: float, path: Path, arrivals: Arrivals, seed: int = 1) -> list[str]:
        """The command that writes ``path``'s lines to stdout at ``rate`` lines/s."""
        if arrivals == "pv":
            return [str(self.pv), "-q", "-l", "-L", str(max(1, round(rate))), str(path)]
        if arrivals not in ARRIVALS:
            raise ValueError(f"arrivals must be one of {ARRIVALS}, got {arrivals!r}")
        poisson = ["-p", "-s", str(seed)] if arrivals == "poisson" else []
        return [str(self.pace), *poisson, f"{rate:g}", str(path)]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.lib_path:
            env["LD_LIBRARY_PATH"] = ":".join(p for p in (self.lib_path, env.get("LD_LIBRARY_PATH")) if p)
        return env


def write_lines(path: Path, records: Iterable[tuple[bytes, bytes]]) -> int:
    """``key<TAB>value`` lines for kcat; values are compact JSON, so they hold no newline or tab."""
    n = 0
    with open(path, "wb") as f:
        for key, value in records:
            if b"\n" in value or b"\t" in key or b"\n" in key:
                raise ValueError("a key or value holds a tab or newline; kcat would split it")
            f.write(key + b"\t" + value + b"\n")
            n += 1
    return n


class PacedProducer:
    """``pace rate FILE | kcat -P``: one background producer of one file into one topic.

    ``rate=None`` sends as fast as the broker takes it (pre-loading). The client settings go
    to kcat in a private config file (``-F``), so a password never shows in ``ps``.
    """

    def __init__(self, tools: LoadTools, settings: Settings, topic: str, path: Path,
                 rate: float | None = None, arrivals: Arrivals = "poisson",
                 seed: int = 1) -> None:
        fd, self._config = tempfile.mkstemp(prefix="kcat-", suffix=".conf")
        with os.fdopen(fd, "w") as f:  # mkstemp: mode 0600
            conf = {"bootstrap.servers": ",".join(settings.bootstrap_servers),
                    "linger.ms": "5", "acks": "all",
                    # a record not delivered within a minute fails the run (kcat exits 1)
                    "message.timeout.ms": "60000", **librdkafka_config(settings)}
            f.writelines(f"{k}={v}\n" for k, v in conf.items())
        kcat = [str(tools.kcat), "-F", self._config, "-P", "-t", topic, "-K", "\t", "-q"]
        env = tools.env()
        if rate is None:
            self._pacer = None
            self._kcat = subprocess.Popen([*kcat, "-l", str(path)], env=env,
                                          stderr=subprocess.PIPE)
        else:
            self._pacer = subprocess.Popen(tools.pacer(rate, path, arrivals, seed),
                                           stdout=subprocess.PIPE, env=env)
            self._kcat = subprocess.Popen(kcat, stdin=self._pacer.stdout, env=env,
                                          stderr=subprocess.PIPE)
            self._pacer.stdout.close()  # kcat holds the pipe; the pacer gets SIGPIPE if kcat dies

    def wait(self, timeout: float | None = None) -> None:
        """Until every line is sent and acknowledged; raises with kcat's words if it failed."""
        try:
            if self._pacer is not None:
                self._pacer.wait(timeout)
            _, err = self._kcat.communicate(timeout=timeout)
        finally:
            Path(self._config).unlink(missing_ok=True)
        if self._kcat.returncode != 0:
            raise RuntimeError(f"kcat failed ({self._kcat.returncode}): {err.decode(errors='replace')[-500:]}")

    def kill(self) -> None:
        for proc in (self._pacer, self._kcat):
            if proc is not None and proc.poll() is None:
                proc.kill()
        Path(self._config).unlink(missing_ok=True)


Lines = list[tuple[bytes, bytes]]


def split_by_key(records: Lines, streams: int) -> list[Lines]:
    """``records`` in ``streams`` groups: all of a key's records in one group, in their order
    (a card's transactions must not overtake each other on the way to the broker)."""
    if streams < 1:
        raise ValueError(f"streams must be 1 or more, got {streams}")
    groups: list[Lines] = [[] for _ in range(streams)]
    for key, value in records:
        groups[zlib.crc32(key) % len(groups)].append((key, value))
    return [g for g in groups if g]


class PacedLoad:
    """One topic's load as ``streams`` :class:`PacedProducer` streams, split by key.

    Each stream runs at its share of ``rate`` (by its share of the lines, so all end
    together), Poisson streams each with a seed of their own. With ``pv`` each starts
    ``PV_PERIOD_S / streams`` after the one before: the bursts of one ``pv`` become ``streams``
    bursts as many times smaller. ``rate=None`` (pre-loading as fast as the broker takes it)
    is one stream.
    """

    def __init__(self, tools: LoadTools, settings: Settings, topic: str,
                 records: Lines, path: Path, rate: float | None = None,
                 streams: int = 1, arrivals: Arrivals = "poisson", seed: int = 1) -> None:
        groups = split_by_key(records, streams if rate is not None else 1)
        self.producers: list[PacedProducer] = []
        try:
            for i, group in enumerate(groups):
                part = path.with_name(f"{path.stem}-{i}{path.suffix}")
                write_lines(part, group)
                share = None if rate is None else rate * len(group) / len(records)
                if i and arrivals == "pv":
                    time.sleep(PV_PERIOD_S / len(groups))
                self.producers.append(PacedProducer(tools, settings, topic, part, share,
                                                    arrivals, seed + i))
        except BaseException:
            self.kill()
            raise

    def wait(self, timeout: float) -> None:
        """Until every stream has sent and had acknowledged all its lines (or raise)."""
        deadline = time.monotonic() + timeout
        try:
            for producer in self.producers:
                producer.wait(max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        for producer in self.producers:
            producer.kill()
