"""The small single-partition topics: model announcements, trainer requests, synthetic frauds.

Written and read with kafka-python by the trainer and the CLI. Workers follow the same
topics asynchronously (``stream/model_follower.py``) and use :func:`announcement_history`
once at start-up, so a worker started later begins with the current champion.

These topics are as hostile as the data plane: any record on them may be garbage. Every
reader puts a ``model-updates`` record through :func:`check_announcement`, which refuses,
with a reason class (``stream.metrics.ANNOUNCEMENT_REFUSALS``) and never an exception:

- a key that is not a role (``champion`` or ``shadow``), or a ``role`` field that disagrees
  with the key;
- anything :func:`~fraudstream.stream.contract.decode` refuses;
- a ``null`` version under ``champion``: a champion is only ever replaced by another verified
  model (``promote``, ``rollback``, ``reannounce``), never cleared by a record. Going back
  to the online learner alone is an operator's act outside the stream: take the champion
  out of the registry (``champion.json``) and restart the workers, which then find no
  announcement naming the registry's champion;
- a ``null`` version under ``shadow`` unless it says ``"action": "clear"`` and names no
  artifact (``fraudstream models shadow --clear``, the one legitimate clear);
- a version announced without the sha256 of its artifact: nothing else binds the record to
  the bytes a worker will load.

What a record cannot show by itself (the artifact exists and matches its sha256, it was
trained on this feature schema, a champion is the registry's champion) the follower checks
against the registry before anything is swapped in.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from .config import Settings
from .logs import RefusalLog, printable
from .contract import Decoded, decode, encode

__all__ = ["Announcement", "RefusalLog", "announce", "announcement_history",
           "check_announcement", "feature_problem", "latest_announcements", "pick_announcements",
           "printable", "producer", "publish_synthetic", "request_retrain", "safe_decode",
           "tail_consumer"]

ROLES = ("champion", "shadow")
#: Shape-valid announcements kept per role at start-up, newest first: enough to step back
#: over a run of unloadable ones without holding a whole hostile topic in memory.
HISTORY_PER_ROLE = 20


@dataclass(frozen=True)
class Announcement:
    """A ``model-updates`` record after :func:`check_announcement`.

    ``role`` is ``None`` when the key names no role. ``refused`` is the reason class (one of
    ``ANNOUNCEMENT_REFUSALS``) and ``error`` what a person reads, both ``None`` when the
    record may go on to the registry checks.
    """

    role: str | None
    payload: dict[str, Any] | None
    refused: str | None = None
    error: str | None = None
    offset: int = -1

    @property
    def ok(self) -> bool:
        return self.refused is None

    @property
    def version(self) -> str | None:
        return (self.payload or {}).get("version")


def safe_decode(kind: str, raw: bytes | None, max_bytes: int = 64 * 1024) -> Decoded:
    """:func:`decode`, with a decoder bug turned into a refusal rather than a crash loop."""
    try:
        return decode(kind, raw, max_bytes=max_bytes)
    except Exception as exc:  # decode() promises not to raise; if it does, refuse the record
        return Decoded(None, f"could not be decoded ({type(exc).__name__}: {exc})")


def check_announcement(key: bytes | None, value: bytes | None, offset: int = -1) -> Announcement:
    """The checks on a ``model-updates`` record that need no registry. Never raises."""
    try:
        role = key.decode("utf-8") if isinstance(key, bytes) else None
    except UnicodeDecodeError:
        role = None
    if role not in ROLES:
        shown = repr(key[:60]) if isinstance(key, bytes) else repr(key)  # repr: ASCII, one line
        return Announcement(None, None, "unknown_role",
                            f"the key {shown} names no role (champion or shadow)", offset)
    got = safe_decode("model-updates", value)
    if got.value is None:
        return Announcement(role, None, "malformed", got.error, offset)
    payload = got.value

    def refuse(reason: str, error: str) -> Announcement:
        return Announcement(role, payload, reason, error, offset)

    if payload.get("role", role) != role:
        return refuse("role_mismatch", f"the record says role {payload.get('role')!r} "
                                       f"under the key {role!r}")
    version = payload.get("version")
    if version is None:
        if role == "champion":
            return refuse("champion_clear", "a record cannot clear the champion; only a verified "
                                            "model replaces it (promote or rollback)")
        if payload.get("action") != "clear" or payload.get("artifact") is not None \
                or payload.get("sha256") is not None:
            return refuse("malformed", 'a shadow clear says "action": "clear" and names no '
                                       "artifact or sha256")
        return Announcement(role, payload, offset=offset)
    if payload.get("action") == "clear":
        return refuse("malformed", f'"action": "clear" with version {version!r}')
    if payload.get("sha256") is None:
        return refuse("no_checksum", f"{version!r} is announced without the sha256 of its "
                                     "artifact")
    return Announcement(role, payload, offset=offset)


def pick_announcements(records: Iterable[tuple[bytes | None, bytes | None, int]],
                       keep: int = HISTORY_PER_ROLE,
                       on_refused: Callable[[Announcement], None] | None = None,
                       ) -> dict[str, list[Announcement]]:
    """Per role, the last ``keep`` records that pass :func:`check_announcement`, newest first.

    ``records`` are ``(key, value, offset)`` in offset order; refused ones go to ``on_refused``.
    """
    kept: dict[str, deque[Announcement]] = {role: deque(maxlen=keep) for role in ROLES}
    for key, value, offset in records:
        ann = check_announcement(key, value, offset)
        if ann.ok:
            kept[ann.role].append(ann)
        elif on_refused is not None:
            on_refused(ann)
    return {role: list(reversed(found)) for role, found in kept.items()}


#: kafka-python options of the trainer's long-lived clients: its reconnect back-off grows to
#: 30 s by default, so after a 20 s broker outage the trainer resumed up to a minute late.
LONG_LIVED_CLIENT = {"reconnect_backoff_max_ms": 2000}


def producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                         client_id="fraudstream-control", **LONG_LIVED_CLIENT,
                         **settings.kafka_python_security())


def announce(settings: Settings, payload: dict[str, Any], kafka: KafkaProducer | None = None,
             timeout: float = 30.0) -> None:
    """Publish a model-updates record keyed by its role; returns once the broker has it."""
    own = kafka is None
    kafka = kafka or producer(settings)
    try:
        kafka.send(settings.topics.model_updates, key=payload["role"].encode("utf-8"),
                   value=encode("model-updates", payload)).get(timeout=timeout)
    finally:
        if own:
            kafka.close(timeout=5)


def announcement_history(settings: Settings, timeout: float = 30.0,
                         on_refused: Callable[[Announcement], None] | None = None,
                         keep: int = HISTORY_PER_ROLE,
                         ) -> tuple[dict[str, list[Announcement]], int]:
    """:func:`pick_announcements` over the whole ``model-updates`` topic, and the end offset
    read up to. Raises only for the broker (unreachable, too slow), never for a record."""
    return _read_model_updates(settings, timeout, lambda records: pick_announcements(
        records, keep, on_refused))


def latest_announcements(settings: Settings, timeout: float = 30.0,
                         on_refused: Callable[[Announcement], None] | None = None,
                         ) -> tuple[dict[str, dict], int]:
    """The last record per role that passes :func:`check_announcement`, and the end offset
    read up to (the registry checks are the caller's)."""
    history, end = announcement_history(settings, timeout, on_refused, keep=1)
    return {role: found[0].payload for role, found in history.items() if found}, end


def _read_model_updates(settings: Settings, timeout: float, pick: Callable[[Iterable], Any]
                        ) -> tuple[Any, int]:
    tp = TopicPartition(settings.topics.model_updates, 0)
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                             enable_auto_commit=False, client_id="fraudstream-models",
                             **settings.kafka_python_security())
    try:
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout

        def records() -> Iterable[tuple[bytes | None, bytes | None, int]]:
            while consumer.position(tp) < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {tp.topic} took over {timeout:.0f} s")
                for batch in consumer.poll(timeout_ms=500).values():
                    for r in batch:
                        if r.offset < end:  # what arrives meanwhile is the follower's
                            yield r.key, r.value, r.offset

        return pick(records()), end
    finally:
        consumer.close()


_FLOATS = {float}


def feature_problem(features: Mapping[str, Any], names: Sequence[str] | None,
                    max_abs: float) -> tuple[str, str] | None:
    """Why a features object cannot be learned from, as ``(reason class, message)``, or None.

    ``names``: the exact feature names required (no more, no fewer); ``None`` accepts any
    names. Every value must be a number (not a boolean), finite, and within ``max_abs``.
    """
    if names is not None:
        wanted = set(names)
        missing = [n for n in names if n not in features]
        if missing:
            return "missing_features", f"{len(missing)} feature(s) missing, e.g. {missing[:3]}"
        if len(features) != len(wanted):
            extra = [printable(k, 40) for k in list(features) if k not in wanted][:3]
            return "unknown_features", (f"{len(features) - len(wanted)} feature(s) outside "
                                        f"the feature schema, e.g. {extra}")
    values = list(features.values())
    if values and set(map(type, values)) == _FLOATS:  # a snapshot's, in C: ~1 us, not ~6
        magnitudes = list(map(abs, values))
        # Sums to a finite number only if every value is finite (NaN and inf propagate).
        if math.isfinite(sum(magnitudes)) and max(magnitudes) <= max_abs:
            return None
    for name, value in features.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "malformed", f"feature {printable(name, 40)!r} is not a number"
        try:
            number = float(value)
        except OverflowError:  # an integer too large for any float
            return "out_of_bounds", f"feature {printable(name, 40)!r} is beyond +-{max_abs:g}"
        if not math.isfinite(number):
            return "non_finite", f"feature {printable(name, 40)!r} is {number}"
        if abs(number) > max_abs:
            return "out_of_bounds", (f"feature {printable(name, 40)!r} is {number:g}, beyond "
                                     f"+-{max_abs:g} (FRAUDSTREAM_MAX_FEATURE_ABS)")
    return None


def request_retrain(settings: Settings, reason: str = "requested from the command line") -> str:
    """Ask the trainer for a cycle now; returns the request id."""
    request_id = uuid.uuid4().hex[:12]
    value = {"command": "retrain", "request_id": request_id, "reason": reason, "at": time.time()}
    kafka = producer(settings)
    try:
        kafka.send(settings.topics.control, key=request_id.encode(),
                   value=encode("control", value)).get(timeout=30)
    finally:
        kafka.close(timeout=5)
    return request_id


def publish_synthetic(settings: Settings, kafka: KafkaProducer, version: str,
                      feature_names: list[str], schema: str, rows: Iterable[Iterable[float]]) -> int:
    """Send synthetic fraud rows to the synthetic-frauds topic; returns how many."""
    now = time.time()
    futures = []
    for row in rows:
        value = {"synthetic": True, "version": version, "feature_schema": schema, "at": now,
                 "features": {n: float(v) for n, v in zip(feature_names, row)}}
        futures.append(kafka.send(settings.topics.synthetic_frauds, key=version.encode(),
                                  value=json.dumps(value, separators=(",", ":")).encode()))
    for f in futures:
        f.get(timeout=30)
    return len(futures)


def tail_consumer(settings: Settings, topic: str, client_id: str) -> KafkaConsumer:
    """A group-less consumer of partition 0 of ``topic``, positioned at its end."""
    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                             enable_auto_commit=False, client_id=client_id,
                             **LONG_LIVED_CLIENT, **settings.kafka_python_security())
    consumer.assign([tp])
    consumer.seek_to_end(tp)
    consumer.position(tp)  # resolve now: requests sent after this call are seen
    return consumer
