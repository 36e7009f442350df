"""The simulator's Kafka sink: :func:`produce_to_kafka` sends :func:`~.simulator.events` as
contract-valid JSON, paced to a replay speed or a transaction rate if asked."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .simulator import Event

__all__ = ["produce_to_kafka"]

# --- Kafka sink -------------------------------------------------------------------------
# Event kind -> contract kind; topics may be keyed by either.
_CONTRACT_KIND = {"transaction": "transactions", "label": "labels"}


class _Pacer:
    """Holds the producer back to ``speed`` (sim seconds per wall second) and ``rate``
    (transactions per wall second), sleeping only when at least ``min_sleep_s`` ahead."""

    def __init__(self, speed: float | None, rate: float | None,
                 clock: Callable[[], float], sleep: Callable[[float], None],
                 min_sleep_s: float = 0.05):
        if speed is not None and not speed > 0:
            raise ValueError("speed must be > 0 simulated seconds per wall second, or None")
        if rate is not None and not rate > 0:
            raise ValueError("rate must be > 0 transactions per second, or None")
        self.speed, self.rate = speed, rate
        self._clock, self._sleep, self._min_sleep_s = clock, sleep, min_sleep_s
        self._wall0 = clock()
        self._sim0: float | None = None
        self._n_tx = 0

    def wait(self, event_ts: float, is_transaction: bool) -> None:
        """Called before each send; returns at once unless a chunk's worth ahead."""
        target = self._wall0
        if self.speed is not None:
            if self._sim0 is None:
                self._sim0 = event_ts
            target = max(target, self._wall0 + (event_ts - self._sim0) / self.speed)
        if self.rate is not None and is_transaction:
            target = max(target, self._wall0 + self._n_tx / self.rate)
            self._n_tx += 1
        ahead = target - self._clock()
        if ahead >= self._min_sleep_s:
            self._sleep(ahead)


def _contract() -> tuple[Callable[[str, dict], bytes], type[Exception]]:
    # Imported late: the pure generator above must not need the contract's schemas.
    from .contract import ContractError, encode

    return encode, ContractError


def produce_to_kafka(
    event_iter: Iterable[Event],
    bootstrap_servers: str | list[str],
    topics: Mapping[str, str],
    speed: float | None = None,
    rate: float | None = None,
    security_kwargs: Mapping[str, Any] | None = None,
    progress: Callable[[dict[str, int]], None] | None = None,
    *,
    producer: Any | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Send :func:`events` to Kafka as contract-valid UTF-8 JSON keyed by card_id.

    ``topics`` maps the event kind (``"transaction"``/``"label"``, or the contract kinds
    ``"transactions"``/``"labels"``) to a topic name. ``speed`` replays at that many
    simulated seconds per wall second and ``rate`` caps transactions per wall second; None
    means as fast as possible. ``progress`` gets the counts about once a second and at the
    end. A value that breaks the contract raises ValueError before anything of it is sent;
    a failed delivery raises RuntimeError after the flush. Returns
    ``{"transactions": n, "labels": m}``.

    ``producer`` (anything with kafka-python's ``send``/``flush``) is used as given and not
    closed; by default a KafkaProducer is built (acks=all, linger 5 ms, no compression).
    """
    encode, contract_error = _contract()
    topic_of: dict[str, str] = {}
    for kind, contract_kind in _CONTRACT_KIND.items():
        name = topics.get(kind, topics.get(contract_kind))
        if name:
            topic_of[kind] = name
    pacer = _Pacer(speed, rate, clock, sleep)
    owned = producer is None
    if owned:
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5,
            compression_type=None, client_id="fraudstream-simulator",
            **dict(security_kwargs or {}),
        )

    counts = {"transactions": 0, "labels": 0}
    failures: list[BaseException] = []
    next_report = clock() + 1.0
    try:
        for kind, key, value, event_ts in event_iter:
            if kind not in topic_of:
                raise ValueError(f"no topic for {kind!r} events; topics has {sorted(topics)}")
            contract_kind = _CONTRACT_KIND[kind]
            try:
                payload = encode(contract_kind, value)
            except contract_error as exc:
                tx_id = value.get("tx_id")
                raise ValueError(f"simulated {kind} {tx_id!r} breaks the contract: {exc}") from exc
            pacer.wait(event_ts, kind == "transaction")
            future = producer.send(topic_of[kind], key=key.encode("utf-8"), value=payload)
            if hasattr(future, "add_errback"):
                future.add_errback(failures.append)
            counts[contract_kind] += 1
            if progress is not None and clock() >= next_report:
                progress(dict(counts))
                next_report = clock() + 1.0
        producer.flush()
    finally:
        if owned:
            producer.close()
    if failures:
        raise RuntimeError(f"{len(failures)} of {sum(counts.values())} messages were not delivered; "
                           f"first error: {failures[0]!r}")
    if progress is not None:
        progress(dict(counts))
    return counts
