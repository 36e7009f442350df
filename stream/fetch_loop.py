"""faust's fetch loop, racing a fetched batch against a flow stop, not each record.

faust's ``Consumer._drain_messages`` hands each fetched record to the conductor inside
``Service.wait_first(callback(record), suspend_flow.wait())``, so that a rebalance's flow stop
interrupts a delivery blocked on a full stream buffer. ``wait_first`` makes four tasks (the
callback, the flow stop, the service's stopped and crashed events), waits and cancels three:
py-spy put it at 19 % of a passthrough worker's busy time, more than the records' own
conversion and delivery. :func:`drain_messages` is the same loop with the race around each
fetched batch: one ``wait_first`` per ``getmany``. A flow stop still cancels the delivery
where it stands, and the per-record checks (read offsets, gaps, flow and generation, inside
``getmany``) are faust's own, in the same order.

Differences, both harmless: the ``broker_commit_every`` check runs once per batch, not per
record, and a record left undelivered by a flow stop keeps its read offset unset (faust's
loop marks the rest of the batch read without delivering it; the seek that follows every
flow stop sets the read offsets anyway).
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, Coroutine

from faust.transport.consumer import CONSUMER_FETCHING

__all__ = ["drain_messages"]


def drain_messages(consumer: Any) -> Callable[[Any], Coroutine[Any, Any, None]]:
    """A replacement for ``consumer._drain_messages`` (faust-streaming 0.15's signature)."""

    async def _drain_messages(fetcher: Any) -> None:
        getmany = consumer.getmany
        consumer_should_stop = consumer._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        set_flag, unset_flag = consumer.diag.set_flag, consumer.diag.unset_flag
        commit_every = consumer._commit_every
        deliver = _deliverer(consumer)
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                records = getmany(timeout=1.0)
                # getmany can return at once again and again: let the loop run
                await consumer.sleep(0)
                if not consumer.should_stop:
                    if commit_every is not None and consumer._n_acked >= commit_every:
                        consumer._n_acked = 0
                        await consumer.commit()
                    await consumer.wait_first(deliver(records), consumer.suspend_flow.wait())
                unset_flag(CONSUMER_FETCHING)
        except consumer.consumer_stopped_errors:
            if consumer.transport.app.should_stop:
                consumer.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if consumer.transport.app.should_stop:
                consumer.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            consumer.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    return _drain_messages


def _deliverer(consumer: Any) -> Callable[[AsyncIterator], Coroutine[Any, Any, None]]:
    callback = consumer.callback
    get_read_offset = consumer._read_offset.__getitem__
    set_read_offset = consumer._read_offset.__setitem__
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    sleep = asyncio.sleep

    async def deliver(records: AsyncIterator) -> None:
        since_yield = 0
        async for tp, message in records:
            since_yield += 1
            if since_yield > 100:  # as faust's loop: other tasks run between records
                await sleep(0)
                since_yield = 0
            offset = message.offset
            r_offset = get_read_offset(tp)
            if r_offset is None or offset >= r_offset:
                if offset - (r_offset or 0) > 1 and r_offset and acks_enabled_for(message.topic):
                    await consumer._add_gap(tp, r_offset + 1, offset)
                await callback(message)
                set_read_offset(tp, offset)

    return deliver
