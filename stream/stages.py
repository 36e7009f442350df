"""The scoring path's stages as plain functions over plain inputs, testable without Kafka.

The faust agents in :mod:`fraudstream.stream.app` are loops around these: decode a
micro-batch, call a stage, send what it returns. Keyed state is reached through
:class:`~fraudstream.stream.store.PartitionedStore` (a RocksDB-backed table in production, a dict in tests).

Stages:

1. :func:`feature_stage` (partitioned by card): validate, card features from the card's
   state, terminal features from this worker's replica of every terminal
   (stream/terminal_view.py), then both states take the transaction. The records it returns
   (:class:`~fraudstream.stream.records.Featurised`) are scored as one micro-batch; the
   terminal events it returns go to the other workers.
2. the label join (partitioned by card): :class:`fraudstream.stream.joiner.LabelJoiner`.

Redelivery after a crash is harmless: the card state remembers the last source offset it
applied, and the terminal replica each transaction's source position, so a message seen again
is featurised from the same state without being added twice and gets the same ``tx_id`` in
its (second) score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from kafka.partitioner.default import murmur2

from ..models.features import DEFAULT_FEATURE_SET, CardState, assemble_features
from .contract import DEFAULT_BOUNDS, REASONS, Bounds, dead_letter, decode, parse_ts
from .event_time import EventTimeGuard
from .records import Featurised
from .store import PartitionedStore
from .terminal_view import TerminalEvents, TerminalView, source_uid

__all__ = [
    "Message",
    "message_of",
    "DeadLetter",
    "FeatureStageResult",
    "feature_stage",
    "triage",
    "dead_message",
    "processing_error",
    "partition_for",
    "key_partition",
]


#: Keys up to this length (card and terminal ids) are cached; a longer one (a dead letter
#: keeps up to 1 KiB of a hostile key) is hashed each time, so no input can fill the cache
#: with large keys.
_CACHED_KEY_BYTES = 256


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in the Java client) picks for
    a record ``key``: where records keyed by this card/terminal live in every co-partitioned
    topic."""
    if len(key) <= _CACHED_KEY_BYTES:
        return _cached_partition(key, partitions)
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@lru_cache(maxsize=1 << 17)
def _cached_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_for(key: str, partitions: int) -> int:
    """:func:`key_partition` of a card or terminal id."""
    return key_partition(key.encode("utf-8"), partitions)


@dataclass(frozen=True)
class Message:
    """The parts of a Kafka record the stages need."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # record timestamp, seconds: when the event arrived in Kafka


def message_of(event: Any) -> Message:
    """A faust event's record as the stages see it."""
    m = event.message
    return Message(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)


@dataclass(frozen=True)
class DeadLetter:
    record: dict[str, Any]
    reason: str  # low-cardinality reason class, for the metric label
    key: bytes | None = None  # the original record key, kept as the dead letter's key


@dataclass
class FeatureStageResult:
    records: list[Featurised] = field(default_factory=list)  # complete features, to score
    dead: list[DeadLetter] = field(default_factory=list)
    events: TerminalEvents = field(default_factory=TerminalEvents)  # for the other replicas


REASON_CLASSES = REASONS
"""Every dead-letter reason class (the metric's ``reason`` label values)."""


def processing_error(exc: BaseException) -> str:
    """The dead-letter error of a record whose processing raised: short, with the cause."""
    text = str(exc)
    if len(text) > 200:
        text = text[:200] + " ..."
    return f"processing_error: {type(exc).__name__}: {text}"


def dead_message(m: Message, error: str, reason: str, now: float) -> DeadLetter:
    """A message that goes to the DLQ with ``error`` (classified as ``reason``)."""
    return DeadLetter(dead_letter(error, m.value, m.topic, m.partition, m.offset, m.key, now,
                                  reason=reason), reason, m.key)


def triage(kind: str, messages: list[Message], max_bytes: int, now: float,
           bounds: Bounds = DEFAULT_BOUNDS, clock: EventTimeGuard | None = None,
           ) -> tuple[list[tuple[Message, dict[str, Any]]], list[DeadLetter]]:
    """Decode and validate a batch: ``(valid (message, value) pairs, dead letters)``.

    The record key must be the ``card_id`` (the contract's partitioning rule): a mismatch
    would split a card's state across partitions, so it is dead-lettered, not guessed at.
    With a ``clock``, the record's ``ts`` must also pass the partition's event-time guard.
    Never raises: a record whose checks raise is dead-lettered as ``processing_error``.
    """
    valid: list[tuple[Message, dict[str, Any]]] = []
    dead: list[DeadLetter] = []
    for m in messages:
        try:
            decoded = decode(kind, m.value, max_bytes, bounds)
            error, reason = decoded.error, decoded.reason
            if error is None and m.key != decoded.value["card_id"].encode("utf-8"):
                error, reason = (f"key {m.key!r} is not the card_id {decoded.value['card_id']!r} "
                                 "(records must be keyed by card_id)"), "key_mismatch"
            if error is None and clock is not None:
                error = clock.admit(m.partition, parse_ts(decoded.value["ts"]), now)
                reason = "ts_skew"
        except Exception as exc:  # a bug must cost one record, not the batch
            error, reason = processing_error(exc), "processing_error"
        if error is not None:
            dead.append(dead_message(m, error, reason or "schema", now))
        else:
            valid.append((m, decoded.value))
    return valid, dead


def feature_stage(messages: list[Message], cards: PartitionedStore, terminals: TerminalView,
                  max_bytes: int, now: float, extra: tuple[str, ...] = (),
                  bounds: Bounds = DEFAULT_BOUNDS, clock: EventTimeGuard | None = None,
                  feature_set: str = DEFAULT_FEATURE_SET) -> FeatureStageResult:
    """Validate transactions, take each one's features, then add it to its card and terminal.

    Returns the records to score (in input order), the terminal events the other replicas
    need (transactions this replica had not seen), and the dead letters: invalid records,
    and any record whose processing raised (the rest of the batch carries on).
    """
    valid, dead = triage("transactions", messages, max_bytes, now, bounds, clock)
    out = FeatureStageResult(dead=dead)
    for m, tx in valid:
        try:
            out.records.append(_feature_step(m, tx, cards, terminals, extra, out.events,
                                             feature_set))
        except Exception as exc:
            out.dead.append(dead_message(m, processing_error(exc), "processing_error", now))
    return out


def _feature_step(m: Message, tx: dict[str, Any], cards: PartitionedStore, terminals: TerminalView,
                  extra: tuple[str, ...], events: TerminalEvents,
                  feature_set: str = DEFAULT_FEATURE_SET) -> Featurised:
    ts = parse_ts(tx["ts"])
    card_id, terminal_id = tx["card_id"], tx["terminal_id"]
    state, last_offset = _card_entry(cards.get(m.partition, card_id))
    # The same assembly as offline (models/features.py): one definition of the vector.
    feats = assemble_features(tx, ts, state, terminals.features(terminal_id, ts), extra,
                              feature_set)
    if m.offset > last_offset:  # a redelivered message was applied already
        state.add(ts, float(tx["amount"]), terminal_id)
        cards.put(m.partition, card_id, {"state": state, "offset": m.offset})
    uid = source_uid(m.partition, m.offset)
    if terminals.add_transaction(terminal_id, ts, uid):  # False: the replica has it already
        events.transactions.append([terminal_id, ts, uid])
    return Featurised(tx["tx_id"], card_id, terminal_id, ts, m.timestamp, feats, m.partition)


def _card_entry(entry: Any) -> tuple[CardState, int]:
    if entry is None:
        return CardState(), -1
    state = entry["state"]
    # Read back from RocksDB, the state is its JSON dict.
    if not isinstance(state, CardState):
        state = CardState.from_dict(state)
    return state, int(entry["offset"])
