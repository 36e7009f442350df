"""The scoring path's stages as plain functions over plain inputs, testable without Kafka.

The faust agents in :mod:`fraudstream.stream.app` are one-line loops around these: decode a
micro-batch, call a stage, send what it returns. Keyed state is reached through
:class:`KeyedStore`, which a faust table implements in production and a dict in tests.

Stages (see DESIGN.md):

1. :func:`card_stage` (partitioned by card): validate, card features, card state update.
2. :func:`terminal_stage` (partitioned by terminal): terminal features and state, then the
   micro-batch is scored in one vectorised call.
3. the label join (partitioned by card): :class:`fraudstream.stream.joiner.LabelJoiner`.

Redelivery after a crash is harmless: each state remembers the last source offset it
applied, so a message seen again is featurised from the same state without being added twice
and gets the same ``tx_id`` in its (second) score. For the terminal state the source is the
transaction's own (partition, offset), carried in the forwarded record: a transaction the card
stage processes again reaches the terminal stage in a new by-terminal message.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Protocol

from kafka.partitioner.default import murmur2

from ..models.features import CardState, TerminalState, calendar_features, extra_features
from .contract import DEFAULT_BOUNDS, REASONS, Bounds, dead_letter, decode, parse_ts
from .event_time import EventTimeGuard

__all__ = [
    "KeyedStore",
    "Message",
    "DeadLetter",
    "CardStageResult",
    "card_stage",
    "terminal_stage",
    "TerminalEntry",
    "terminal_entry",
    "triage",
    "dead_message",
    "processing_error",
    "partition_for",
    "group_by_partition",
    "position",
]

#: Records per internal message are bounded by the micro-batch size; positions combine the
#: message offset with the record's index in it, so redelivery checks stay exact.
_MAX_RECORDS_PER_MESSAGE = 1 << 16


def position(offset: int, index: int) -> int:
    """A record's position in an internal topic partition: (message offset, index) as one int."""
    return offset * _MAX_RECORDS_PER_MESSAGE + index


@lru_cache(maxsize=1 << 17)
def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in the Java client) picks for
    ``key``: where records keyed by this card/terminal live in every co-partitioned topic."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


def group_by_partition(records: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str],
                       partitions: int) -> dict[int, list[dict[str, Any]]]:
    """Split records by the partition of their key, keeping their order within each group.

    Internal topics carry one message per (micro-batch, partition) instead of one per record:
    every record in it hashes to that partition, so keyed state stays co-partitioned while the
    per-message cost of the client stack is paid once per batch.
    """
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        groups[partition_for(key(rec), partitions)].append(rec)
    return dict(groups)


class KeyedStore(Protocol):
    """Partition-aware key/value state (a faust table, or a dict wrapper in tests)."""

    def get(self, key: str) -> Any: ...
    def put(self, partition: int, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class Message:
    """The parts of a Kafka record the stages need."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # record timestamp, seconds: when the event arrived in Kafka


@dataclass(frozen=True)
class DeadLetter:
    record: dict[str, Any]
    reason: str  # low-cardinality reason class, for the metric label
    key: bytes | None = None  # the original record key, kept as the dead letter's key


@dataclass
class CardStageResult:
    forward: list[dict[str, Any]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


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


def card_stage(messages: list[Message], cards: KeyedStore, max_bytes: int, now: float,
               extra: tuple[str, ...] = (), bounds: Bounds = DEFAULT_BOUNDS,
               clock: EventTimeGuard | None = None) -> CardStageResult:
    """Validate transactions, take card features before each, update the card states.

    Returns the records to forward to the terminal stage (partitioned by ``terminal_id``),
    and the dead letters: invalid records, and any record whose processing raised (the rest
    of the batch carries on).
    """
    valid, dead = triage("transactions", messages, max_bytes, now, bounds, clock)
    out = CardStageResult(dead=dead)
    for m, tx in valid:
        try:
            out.forward.append(_card_step(m, tx, cards, extra))
        except Exception as exc:
            out.dead.append(dead_message(m, processing_error(exc), "processing_error", now))
    return out


def _card_step(m: Message, tx: dict[str, Any], cards: KeyedStore,
               extra: tuple[str, ...]) -> dict[str, Any]:
    ts = parse_ts(tx["ts"])
    card_id = tx["card_id"]
    state, last_offset = _card_entry(cards.get(card_id))
    feats: dict[str, float] = {"amount": float(tx["amount"])}
    feats.update(calendar_features(ts))
    feats.update(state.features(ts))
    feats.update(extra_features(tx, extra))
    # "source" lets the terminal stage recognise a redelivered transaction, whatever message
    # carries it there (see _terminal_step).
    record = {"tx_id": tx["tx_id"], "card_id": card_id, "terminal_id": tx["terminal_id"],
              "ts": ts, "arrived": m.timestamp, "features": feats,
              "source": [m.partition, m.offset]}
    if m.offset > last_offset:  # a redelivered message was applied already
        state.add(ts, float(tx["amount"]))
        cards.put(m.partition, card_id, {"state": state, "offset": m.offset})
    return record


def _card_entry(entry: Any) -> tuple[CardState, int]:
    if entry is None:
        return CardState(), -1
    state = entry["state"]
    # After recovery from the changelog the state comes back as its JSON dict.
    if not isinstance(state, CardState):
        state = CardState.from_dict(state)
    return state, int(entry["offset"])


@dataclass
class TerminalEntry:
    """A terminal's state and what has been applied to it, as kept in the terminal table.

    ``sources`` maps each ``transactions`` partition to the highest offset of it whose
    transaction was added: a transaction the card stage forwards again after a crash arrives
    in a new by-terminal message at a new offset, so only its source position tells that it
    was counted already. One entry per source partition, so it stays bounded.
    ``tx_offset`` is the by-terminal position last applied, the check for records forwarded
    without a source (by an older worker).
    """

    state: TerminalState = field(default_factory=TerminalState)
    tx_offset: int = -1
    fraud_offset: int = -1
    sources: dict[str, int] = field(default_factory=dict)

    def to_value(self) -> dict[str, Any]:
        # JSON object keys are strings: the partitions are kept as strings in memory too, so
        # a value recovered from the changelog reads the same as the one that was written.
        return {"state": self.state, "tx_offset": self.tx_offset,
                "fraud_offset": self.fraud_offset, "sources": self.sources}


def terminal_entry(entry: Any) -> TerminalEntry:
    """The table value as a :class:`TerminalEntry` (an object, or its JSON dict after recovery).

    Values written before ``sources`` existed load with none: their transactions are then
    deduplicated by ``tx_offset`` only.
    """
    if entry is None:
        return TerminalEntry()
    state = entry["state"]
    sources = entry.get("sources") or {}
    if not isinstance(state, TerminalState):  # recovered from the changelog: check its types
        state = TerminalState.from_dict(state)
        sources = {str(p): int(o) for p, o in sources.items()}
    return TerminalEntry(state, int(entry["tx_offset"]), int(entry["fraud_offset"]), sources)


def terminal_stage(records: list[tuple[int, int, dict[str, Any]]], terminals: KeyedStore,
                   delay_s: float, failed: list[tuple[dict[str, Any], Exception]] | None = None,
                   ) -> list[dict[str, Any]]:
    """Add terminal features to card-enriched records ``(partition, position, record)``.

    Returns the records with complete feature dicts, in input order, ready to be scored. With
    a ``failed`` list, a record whose step raises is appended there with its exception and
    the others carry on; without one, the exception propagates.
    """
    out = []
    for partition, offset, rec in records:
        try:
            out.append(_terminal_step(partition, offset, rec, terminals, delay_s))
        except Exception as exc:
            if failed is None:
                raise
            failed.append((rec, exc))
    return out


def _terminal_step(partition: int, offset: int, rec: dict[str, Any], terminals: KeyedStore,
                   delay_s: float) -> dict[str, Any]:
    tid = rec["terminal_id"]
    entry = terminal_entry(terminals.get(tid))
    rec["features"].update(entry.state.features(rec["ts"], delay_s))
    source = rec.get("source")
    if source is not None:
        src_partition, src_offset = str(int(source[0])), int(source[1])
        fresh = src_offset > entry.sources.get(src_partition, -1)
    else:
        fresh = offset > entry.tx_offset
    if fresh:
        entry.state.add_transaction(rec["ts"])
        if source is not None:
            entry.sources[src_partition] = src_offset
        entry.tx_offset = max(entry.tx_offset, offset)
        terminals.put(partition, tid, entry.to_value())
    return rec


def apply_fraud(partition: int, offset: int, terminal_id: str, tx_ts: float,
                terminals: KeyedStore) -> bool:
    """Count a confirmed fraud at its terminal (once, even if redelivered)."""
    entry = terminal_entry(terminals.get(terminal_id))
    if offset <= entry.fraud_offset:
        return False
    entry.state.add_fraud(tx_ts)
    entry.fraud_offset = offset
    terminals.put(partition, terminal_id, entry.to_value())
    return True
