"""faust's livelock detector, kept from crashing the worker on a partition being reset.

Every ``2.5 x commit_interval`` faust's consumer checks each assigned partition's event path
(``verify_event_path``: fetched lately? processed? committed?) and reads aiokafka's
``position`` of the partition, a property that *asserts* the position is known. It is not
while aiokafka resets it: after ``seek_to_beginning`` (the worker rewinds partitions with no
committed offset, stream/outbox.py) until the fetcher looks the offset up, or after an
out-of-range reset. A check in that window raised ``AssertionError`` in faust's service task
and crashed the worker: one CI run of the trainer end-to-end test, 2026-12-04, a second
after the worker's first recovery. A partition without a position has nothing to verify
yet: the check skips it, and verifies it at the next round.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from aiokafka import TopicPartition
from faust.types import TP

__all__ = ["install", "positioned"]

log = logging.getLogger("fraudstream.worker")


def positioned(aiokafka_consumer: Any, tp: TP) -> bool:
    """Whether aiokafka knows ``tp``'s fetch position (False while it is being reset, or if
    the partition is not in its assignment)."""
    subscription = aiokafka_consumer._fetcher._subscriptions.subscription
    assignment = None if subscription is None else subscription.assignment
    if assignment is None:
        return False
    state = assignment.state_value(TopicPartition(tp.topic, tp.partition))
    return state is not None and state.has_valid_position


def install(consumer: Any, is_positioned: Callable[[Any, TP], bool] = positioned) -> None:
    """Wrap faust's ``consumer.verify_event_path`` so an unpositioned partition is skipped."""
    verify = consumer.verify_event_path

    def verify_event_path(now: float, tp: TP) -> None:
        try:
            aiokafka_consumer = consumer._thread._ensure_consumer()
        except Exception:  # not started, or stopping: faust's check would fail the same way
            return None
        if not is_positioned(aiokafka_consumer, tp):
            log.debug("livelock check skips %s: its fetch position is being reset", tp)
            return None
        return verify(now, tp)

    consumer.verify_event_path = verify_event_path
