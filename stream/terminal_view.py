"""Every terminal's recent history, held whole by every worker: the terminal half of the features.

Terminal features only look at transactions older than the label delay ``D`` (their windows
end at ``ts - D``, models/features.py), so they need not be computed where the transaction
is routed. Each worker keeps a replica of every terminal's history and scoring reads it in
place: a transaction crosses one Kafka hop, ``transactions`` (by card) to ``scores``.

The replica is fed by the ``<app>-terminal-events`` topic (:class:`TerminalEvents` below):

* a scored transaction, ``[terminal, ts, uid]`` with ``uid`` its source position (partition
  and offset in ``transactions``), sent by the worker that scored it;
* a confirmed fraud, ``[terminal, tx_ts, tx_id]``, sent by the worker that joined the label.

The sending worker applies its own events at once (so the rest of a micro-batch sees them, as
a sequential pass would) and every worker applies every event it reads from the topic. Each
event carries an identity and a duplicate is not counted (``TerminalState``), so replicas
converge whatever order events reach them in: the local copy first, a redelivered
transaction re-scored after a crash, a label joined twice.

Exactness: a query at ``ts`` needs every transaction with a time before ``ts - D``. A replica
lags the topic by milliseconds; a live feature differs from the offline definition only if a
transaction reaches it more than ``D`` (days) of event time after a later one was scored.

Recovery: :meth:`TerminalView.save` writes the replica with the topic offsets it reflects
(atomically, every few seconds); a restarted worker loads it and reads only the events after
it. Without a usable file it reads the topic from the start, whose retention keeps
``D + 30 days`` plus a margin: the live state itself, never the service's history.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..models.durable import atomic_write
from ..models.features import TerminalState

__all__ = ["TerminalView", "TerminalEvents", "source_uid", "SnapshotError", "encode_all",
           "write_file"]

log = logging.getLogger("fraudstream.worker")

_SNAPSHOT_VERSION = 2  # 2: binary event columns (1 was JSON)
_MAX_ID = 128  # the contract's id bound (stream/contract.py)
_MAX_UID = 1 << 63  # transaction identities are stored as int64


class SnapshotError(ValueError):
    """A terminal-view file that cannot be used (unreadable, another topic or delay)."""


def source_uid(partition: int, offset: int) -> int:
    """A transaction's identity in the replica: its source position as one JSON-safe int."""
    return (int(partition) << 40) | int(offset)


class TerminalEvents:
    """The events one micro-batch sends, grouped by destination partition of the topic."""

    def __init__(self) -> None:
        self.transactions: list[list[Any]] = []
        self.frauds: list[list[Any]] = []

    def __bool__(self) -> bool:
        return bool(self.transactions or self.frauds)

    def messages(self, partition_of: Any) -> dict[int, bytes]:
        """``{partition: value}``: one message per destination partition (key: terminal)."""
        groups: dict[int, dict[str, list[list[Any]]]] = {}
        for kind, events in (("tx", self.transactions), ("fraud", self.frauds)):
            for event in events:
                group = groups.setdefault(partition_of(event[0]), {"tx": [], "fraud": []})
                group[kind].append(event)
        return {p: orjson.dumps(g) for p, g in groups.items()}


class TerminalView:
    """The replica: ``terminal_id -> TerminalState`` and the topic offsets it reflects."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = float(delay_s)
        self.terminals: dict[str, TerminalState] = {}
        self.offsets: dict[int, int] = {}  # topic partition -> next offset to read
        self.rejected = 0  # malformed events skipped (the topic is internal: none expected)

    def __len__(self) -> int:
        return len(self.terminals)

    def _state(self, terminal_id: str) -> TerminalState:
        state = self.terminals.get(terminal_id)
        if state is None:
            state = self.terminals[terminal_id] = TerminalState(self.delay_s)
        return state

    def features(self, terminal_id: str, ts: float) -> dict[str, float]:
        state = self.terminals.get(terminal_id)
        return (state or TerminalState(self.delay_s)).features(ts, self.delay_s)

    def add_transaction(self, terminal_id: str, ts: float, uid: int) -> bool:
        return self._state(terminal_id).add_transaction(ts, uid)

    def add_fraud(self, terminal_id: str, tx_ts: float, tx_id: str) -> bool:
        return self._state(terminal_id).add_fraud(tx_ts, tx_id)

    def apply(self, partition: int, offset: int, value: bytes | None) -> int:
        """Apply one topic message; returns how many events were applied (duplicates too)."""
        self.offsets[partition] = offset + 1
        try:
            message = orjson.loads(value) if value is not None else None
            tx, frauds = message["tx"], message["fraud"]
            if not isinstance(tx, list) or not isinstance(frauds, list):
                raise TypeError("tx and fraud must be lists")
        except Exception:
            self.rejected += 1
            return 0
        applied = 0
        # A transaction's identity is its source position (int), a fraud's its tx_id (str).
        for events, uid_type, add in ((tx, int, TerminalState.add_transaction),
                                      (frauds, str, TerminalState.add_fraud)):
            for event in events:
                if _valid(event, uid_type):
                    add(self._state(event[0]), float(event[1]), event[2])
                    applied += 1
                else:
                    self.rejected += 1
        return applied

    def prune(self) -> int:
        """Drop terminals whose history is empty (their events all aged out); returns how many."""
        empty = [t for t, s in self.terminals.items() if not len(s) and not s.n_frauds]
        for t in empty:
            del self.terminals[t]
        return len(empty)

    def events(self) -> int:
        """Transactions and frauds held, all terminals."""
        return sum(len(s) + s.n_frauds for s in self.terminals.values())

    # -- snapshot file -------------------------------------------------------------------
    def save(self, path: Path, topic: str) -> int:
        """Write the replica and its offsets atomically; returns the file's size in bytes."""
        data = encode_all(self.encode_steps(topic))
        write_file(path, data)
        return len(data)

    def encode_steps(self, topic: str, chunk: int = 500) -> Iterator[bytes | None]:
        """The replica's file, made ``chunk`` terminals at a time: yields ``None`` between
        chunks (the worker serves its event loop there), then the file's bytes.

        Events applied between chunks are safe: the offsets are taken first, so every event
        applied after them is read from the topic again on a restart, and the identities
        make an event held twice count once (module docstring). A whole save at once held
        the loop 140-240 ms at 200,000 events (JSON); a chunk holds it a few ms.
        """
        offsets = {str(p): o for p, o in self.offsets.items()}
        names = list(self.terminals)
        kept: list[str] = []
        ts: list[float] = []
        ids: list[Any] = []
        fraud_ts: list[float] = []
        n_tx, n_fraud, delays, fraud_ids = [], [], [], []
        for start in range(0, len(names), chunk):
            for name in names[start:start + chunk]:
                state = self.terminals.get(name)
                if state is None:  # pruned meanwhile: nothing of it is needed
                    continue
                t, i, ft, fi, delay = state.columns()
                kept.append(name)
                ts.extend(t)
                ids.extend(i)
                fraud_ts.extend(ft)
                fraud_ids.extend(fi)
                n_tx.append(len(t))
                n_fraud.append(len(ft))
                delays.append(delay)
            yield None
        if None in ids:  # no identity: stored as -1, no source position is negative
            ids = [-1 if u is None else u for u in ids]
        header = orjson.dumps({
            "v": _SNAPSHOT_VERSION, "topic": topic, "delay_s": self.delay_s,
            "offsets": offsets, "terminals": kept, "n_tx": n_tx, "n_fraud": n_fraud,
            "delays": delays, "fraud_ids": fraud_ids,
        })
        yield b"".join((_MAGIC, _HEADER_LEN.pack(len(header)), header,
                        np.array(ts, "<f8").tobytes(), np.array(ids, "<i8").tobytes(),
                        np.array(fraud_ts, "<f8").tobytes()))

    @classmethod
    def load(cls, path: Path, topic: str, delay_s: float) -> TerminalView:
        """The replica saved at ``path``; :class:`SnapshotError` if it cannot be used."""
        try:
            return _decode(path.read_bytes(), topic, delay_s)
        except SnapshotError:
            raise
        except Exception as exc:  # torn, truncated or edited by hand
            raise SnapshotError(f"{type(exc).__name__}: {exc}") from exc


# The file (TerminalView.encode_steps): _MAGIC, the header's length (8 bytes, little-endian),
# the header (JSON: topic, delay, offsets, terminal names, per terminal its transaction and
# fraud counts and delay, the fraud identities), then every terminal's transaction times
# (float64), transaction identities (int64, -1 for none) and fraud times (float64), terminal
# after terminal.
_MAGIC = b"FSTV2\n"
_HEADER_LEN = struct.Struct("<Q")


def write_file(path: Path, data: bytes) -> None:
    """Put an encoded replica at ``path`` atomically (a crash leaves the old file or this)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, prefix=f".{path.name}.")


def encode_all(steps: Iterator[bytes | None]) -> bytes:
    """Run :meth:`TerminalView.encode_steps` to its end; the file's bytes."""
    for data in steps:
        if data is not None:
            return data
    raise RuntimeError("encode_steps ended without the file")


def _decode(raw: bytes, topic: str, delay_s: float) -> TerminalView:
    if not raw.startswith(_MAGIC):
        raise SnapshotError("not a version-2 replica file (an older worker's, or another file)")
    at = len(_MAGIC) + _HEADER_LEN.size
    (n,) = _HEADER_LEN.unpack_from(raw, len(_MAGIC))
    data = orjson.loads(raw[at:at + n])
    if data.get("v") != _SNAPSHOT_VERSION:
        raise SnapshotError(f"version {data.get('v')!r}, expected {_SNAPSHOT_VERSION}")
    if data.get("topic") != topic:
        raise SnapshotError(f"it is of topic {data.get('topic')!r}, not {topic!r}")
    if float(data["delay_s"]) != float(delay_s):
        raise SnapshotError(f"label delay {data['delay_s']} s, now {delay_s} s")
    names, n_tx, n_fraud = data["terminals"], data["n_tx"], data["n_fraud"]
    delays, fraud_ids = data["delays"], data["fraud_ids"]
    total, frauds = sum(n_tx), sum(n_fraud)
    if not len(names) == len(n_tx) == len(n_fraud) == len(delays) or len(fraud_ids) != frauds:
        raise SnapshotError("the header's per-terminal lists differ in length")
    body = memoryview(raw)[at + n:]
    if len(body) != 8 * (2 * total + frauds):
        raise SnapshotError(f"{len(body)} bytes of events, expected {8 * (2 * total + frauds)}")
    ts = np.frombuffer(body, "<f8", total)
    ids = np.frombuffer(body, "<i8", total, 8 * total)
    fraud_ts = np.frombuffer(body, "<f8", frauds, 16 * total)
    _check_sorted(ts, n_tx)
    _check_sorted(fraud_ts, n_fraud)
    ts_l, fraud_l = ts.tolist(), fraud_ts.tolist()
    ids_l: list[Any] = [None if u < 0 else u for u in ids.tolist()]
    view = TerminalView(delay_s)
    view.offsets = {int(p): int(o) for p, o in data["offsets"].items()}
    a = f = 0
    for name, k, m, delay in zip(names, n_tx, n_fraud, delays):
        view.terminals[str(name)] = TerminalState.from_columns(
            ts_l[a:a + k], ids_l[a:a + k], fraud_l[f:f + m], fraud_ids[f:f + m],
            None if delay is None else float(delay))
        a, f = a + k, f + m
    return view


def _check_sorted(times: np.ndarray, counts: list[int]) -> None:
    """Every terminal's times finite and ascending (the bisections rely on it)."""
    if not np.isfinite(times).all():
        raise SnapshotError("an event time is not finite")
    step = np.diff(times)
    if len(step):
        starts = np.cumsum(counts)[:-1]  # the first event of every terminal but the first
        keep = np.ones(len(step), dtype=bool)
        keep[starts[(starts > 0) & (starts <= len(step))] - 1] = False
        if (step[keep] < 0).any():
            raise SnapshotError("a terminal's event times are not sorted")


def _valid(event: Any, uid_type: type) -> bool:
    return (isinstance(event, list) and len(event) == 3 and isinstance(event[0], str)
            and 0 < len(event[0]) <= _MAX_ID and isinstance(event[1], (int, float))
            and not isinstance(event[1], bool) and math.isfinite(event[1])
            and isinstance(event[2], uid_type) and not isinstance(event[2], bool)
            # a transaction's identity is a source position (source_uid): it must fit the
            # saved file's int64 column, or one such event would fail every later save
            and (uid_type is not int or 0 <= event[2] < _MAX_UID)
            and (uid_type is not str or len(event[2]) <= _MAX_ID))

