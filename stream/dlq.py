"""``fraudstream dlq replay``: re-validate dead letters and re-publish the ones now valid.

A dead letter (docs/contract.md) keeps the original bytes, key and source topic of a message
the workers rejected. After the cause is fixed on *our* side, the same bytes pass:

- a limit was raised (``FRAUDSTREAM_MAX_MESSAGE_BYTES`` for larger payloads),
- a validation bug was fixed in a new release (the contract accepts what it wrongly refused),
- a producer keyed records by something other than the card (``--rekey``: key by card_id).

Data a producer got wrong (a string amount, a bad timestamp) is not patched here: the
producer re-sends it. Each dead letter is checked with the contract's own :func:`decode`
and the workers' keying rule, under the settings of this process; replay runs with the
same settings as the workers (after the fix). Still-invalid letters are reported with the
reason and left in the DLQ.

The range read is fixed when the replay starts (so letters that fail again and are
dead-lettered anew are not re-read in a loop). By default it starts where the consumer
group ``<app_id>-dlq-replay`` stopped last time and commits the end after re-publishing,
so running the same replay twice re-publishes nothing. ``--from-beginning`` re-reads all
(and commits); an explicit range (``--since``/``--until``/``--from-offset``/``--to-offset``)
leaves the group untouched.

    fraudstream dlq replay --dry-run            # what would be re-published, and why not
    fraudstream dlq replay                      # do it
    fraudstream dlq replay --source all --since 2h --dry-run
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from .config import Settings
from .contract import decode

__all__ = ["Verdict", "ReplayRange", "ReplayReport", "ReplayError", "judge", "replay"]

# A dead letter carries the original payload in base64: allow far more than any topic limit.
_DLQ_MAX_BYTES = 64 * 1024 * 1024


class ReplayError(RuntimeError):
    """The replay could not finish; nothing was committed, so the same command can be rerun."""


@dataclass(frozen=True)
class Verdict:
    """What to do with one dead letter: re-publish ``value`` to ``topic`` keyed ``key``, or
    leave it (``error`` says why it still fails)."""

    topic: str | None
    key: bytes | None
    value: bytes | None
    error: str | None
    original_error: str = ""
    tx_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def judge(kind: str, dead_letter: bytes | None, max_bytes: int, rekey: bool = False) -> Verdict:
    """Re-validate one dead letter of ``kind`` (``transactions`` or ``labels``).

    The payload passes :func:`fraudstream.stream.contract.decode` with ``max_bytes`` and the
    workers' keying rule: the record key is the card_id. A letter without a key is keyed by
    its card_id; one keyed by something else still fails unless ``rekey``.

    >>> import base64, json
    >>> tx = {"tx_id": "t1", "ts": 1767225600, "card_id": "c1", "terminal_id": "x", "amount": 5}
    >>> letter = json.dumps({"error": "payload is 90 bytes, over the 64-byte limit",
    ...     "source": {"topic": "transactions", "partition": 0, "offset": 7, "key_b64": None},
    ...     "payload_b64": base64.b64encode(json.dumps(tx).encode()).decode(), "at": 0}).encode()
    >>> v = judge("transactions", letter, max_bytes=65536)
    >>> (v.ok, v.topic, v.key)
    (True, 'transactions', b'c1')
    >>> judge("transactions", letter, max_bytes=64).error
    'payload is 83 bytes, over the 64-byte limit'
    """
    letter = decode("dlq", dead_letter, max_bytes=_DLQ_MAX_BYTES)
    if not letter.ok:
        return Verdict(None, None, None, f"unreadable dead letter: {letter.error}")
    record = letter.value
    source = record["source"]
    original = record["error"]
    try:
        payload = base64.b64decode(record["payload_b64"], validate=True)
        key_b64 = source.get("key_b64")
        key = base64.b64decode(key_b64, validate=True) if key_b64 is not None else None
    except (binascii.Error, ValueError) as exc:
        return Verdict(None, None, None, f"unreadable dead letter: bad base64 ({exc})", original)
    if record.get("payload_truncated"):
        return Verdict(source["topic"], key, payload,
                       f"the dead letter keeps only the first {len(payload)} of "
                       f"{record.get('payload_bytes')} bytes (sha256 {record.get('payload_sha256')}); "
                       f"the whole record is at {source['topic']}/{source['partition']}"
                       f"@{source['offset']} while the topic retains it", original)
    decoded = decode(kind, payload, max_bytes=max_bytes)
    if not decoded.ok:
        return Verdict(source["topic"], key, payload, decoded.error, original)
    value = decoded.value
    card = value["card_id"].encode("utf-8")
    tx_id = value.get("tx_id")
    if key is not None and key != card:
        if not rekey:
            return Verdict(source["topic"], key, payload,
                           f"key {key!r} is not the card_id {value['card_id']!r} "
                           "(records must be keyed by card_id; --rekey keys them by card_id)",
                           original, tx_id)
        key = card
    return Verdict(source["topic"], key if key is not None else card, payload, None, original, tx_id)


@dataclass(frozen=True)
class ReplayRange:
    """Which dead letters to read. Unset fields: from the group's position to the end."""

    from_beginning: bool = False
    since: float | None = None
    until: float | None = None
    from_offset: int | None = None
    to_offset: int | None = None
    partitions: tuple[int, ...] = ()

    @property
    def explicit(self) -> bool:
        """An explicit range reads what it names and leaves the consumer group alone."""
        return any(v is not None for v in (self.since, self.until, self.from_offset, self.to_offset))


@dataclass
class ReplayReport:
    read: int = 0
    republished: int = 0
    still_invalid: int = 0
    by_reason: Counter = field(default_factory=Counter)
    committed: bool = False
    dry_run: bool = True

    def summary(self) -> str:
        verb = "would re-publish" if self.dry_run else "re-published"
        lines = [f"read {self.read} dead letters: {verb} {self.republished}, "
                 f"{self.still_invalid} still invalid (left in the DLQ)"]
        for reason, n in self.by_reason.most_common():
            lines.append(f"  {n:6d}  still invalid: {reason}")
        if not self.dry_run:
            lines.append("consumer group offsets committed: a repeat re-publishes nothing"
                         if self.committed else "consumer group offsets not changed (explicit range)")
        return "\n".join(lines)


def _reason_class(error: str) -> str:
    # Group the summary by the kind of reason, not by every tx_id it names.
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "…", error)[:120]


def _kafka_kwargs(settings: Settings) -> dict[str, Any]:
    return {"bootstrap_servers": settings.bootstrap_servers, **settings.kafka_python_security()}


def replay(settings: Settings, sources: list[str], rng: ReplayRange, *, dry_run: bool,
           group: str, rekey: bool = False, out: TextIO = sys.stdout,
           progress: Callable[[str], None] | None = None, list_each: bool = True,
           idle_timeout_s: float = 60.0) -> ReplayReport:
    """Read the dead letters of ``sources`` (``transactions``/``labels``) in ``rng``, re-validate
    each, and (unless ``dry_run``) re-publish the valid ones and commit the group's offsets."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    dlq_topic = {"transactions": settings.topics.transactions_dlq, "labels": settings.topics.labels_dlq}
    report = ReplayReport(dry_run=dry_run)
    consumer = KafkaConsumer(group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                             client_id="fraudstream-dlq-replay", **_kafka_kwargs(settings))
    producer = None if dry_run else KafkaProducer(
        acks="all", linger_ms=5, client_id="fraudstream-dlq-replay", **_kafka_kwargs(settings))
    try:
        kind_of: dict[str, str] = {}
        bounds: dict[Any, tuple[int, int]] = {}
        for kind in sources:
            topic = dlq_topic[kind]
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                raise ReplayError(f"topic {topic!r} does not exist at {settings.broker_url} "
                                  f"(FRAUDSTREAM_TOPICS__{kind.upper()}_DLQ)")
            kind_of[topic] = kind
            tps = [TopicPartition(topic, p) for p in sorted(parts)
                   if not rng.partitions or p in rng.partitions]
            bounds.update(_bounds(consumer, tps, rng))
        todo = {tp: (lo, hi) for tp, (lo, hi) in bounds.items() if lo < hi}
        total = sum(hi - lo for lo, hi in todo.values())
        if progress:
            progress(f"{total} dead letters in range on {len(todo)} partitions")
        consumer.assign(list(bounds))
        for tp, (lo, _) in bounds.items():
            consumer.seek(tp, lo)
        consumer.pause(*[tp for tp in bounds if tp not in todo])
        failures: list[BaseException] = []
        last_report = last_progress = time.monotonic()
        while todo:
            batch = consumer.poll(timeout_ms=1000, max_records=2000)
            if batch:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > idle_timeout_s:
                raise ReplayError(
                    f"no dead letters read for {idle_timeout_s:.0f} s with {len(todo)} partitions "
                    "unfinished: is the broker healthy? (nothing was committed)")
            for tp, records in batch.items():
                if tp not in todo:
                    continue
                for r in records:
                    lo, hi = todo.get(tp, (0, -1))
                    if r.offset >= hi:
                        break
                    report.read += 1
                    v = judge(kind_of[tp.topic], r.value, settings.max_message_bytes, rekey)
                    where = f"{tp.topic} {tp.partition}:{r.offset}"
                    if v.ok:
                        report.republished += 1
                        if producer is not None:
                            producer.send(v.topic, key=v.key, value=v.value).add_errback(failures.append)
                        if list_each:
                            verb = "would re-publish" if dry_run else "re-published"
                            print(f"{where}  {verb} -> {v.topic} key={v.key.decode('utf-8', 'replace')}"
                                  f" tx_id={v.tx_id}  (was: {v.original_error})", file=out)
                    else:
                        report.still_invalid += 1
                        report.by_reason[_reason_class(v.error)] += 1
                        if list_each:
                            print(f"{where}  still invalid: {v.error}", file=out)
            for tp in list(todo):
                if consumer.position(tp) >= todo[tp][1]:
                    del todo[tp]
                    consumer.pause(tp)  # its range is done: fetch nothing past it
            if progress and time.monotonic() - last_report >= 2:
                last_report = time.monotonic()
                progress(f"  {report.read}/{total} dead letters read, {report.republished} valid")
        if producer is not None:
            producer.flush()
            if failures:
                raise ReplayError(f"{len(failures)} of the re-published messages failed: {failures[0]!r} "
                                  "(offsets not committed; run the same replay again)")
            if not rng.explicit:
                consumer.commit({tp: OffsetAndMetadata(hi, "", -1) for tp, (_, hi) in bounds.items()})
                report.committed = True
        return report
    finally:
        if producer is not None:
            producer.close()
        consumer.close(autocommit=False)


def _bounds(consumer: Any, tps: list, rng: ReplayRange) -> dict[Any, tuple[int, int]]:
    """``[start, end)`` offsets per partition, fixed now."""
    first = consumer.beginning_offsets(tps)
    last = consumer.end_offsets(tps)
    since = consumer.offsets_for_times({tp: int(rng.since * 1000) for tp in tps}) if rng.since else {}
    until = consumer.offsets_for_times({tp: int(rng.until * 1000) for tp in tps}) if rng.until else {}
    out = {}
    for tp in tps:
        lo, hi = first[tp], last[tp]
        if rng.from_offset is not None:
            lo = max(lo, rng.from_offset)
        elif rng.since is not None:
            found = since.get(tp)
            lo = found.offset if found is not None else hi
        elif not rng.from_beginning:
            committed = consumer.committed(tp)
            if committed is not None:
                lo = max(lo, committed)
        if rng.to_offset is not None:
            hi = min(hi, rng.to_offset)
        if rng.until is not None:
            found = until.get(tp)
            if found is not None:
                hi = min(hi, found.offset)
        out[tp] = (lo, max(lo, hi))
    return out
