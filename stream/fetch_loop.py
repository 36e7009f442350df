"""faust's fetch loop, racing a fetched batch against a flow stop, not each record.

faust's ``Consumer._drain_messages`` hands each fetched record to the conductor inside
``Service.wait_first(callback(record), suspend_flow.wait())``, so that a rebalance's flow stop
interrupts a delivery blocked on a full stream buffer. ``wait_first`` makes four tasks (the
callback, the flow stop, the service's stopped and crashed events), waits and cancels three:
py-spy put it at 19 % of a passthrough worker's busy time, more than the records' own
conversion and delivery. :func:`drain_messages` is the same loop with the race around each
fetched batch's delivery: one ``wait_first`` per ``getmany``. The fetch itself runs outside
the race, as in faust (its checks of flow and generation, and its seek back to the committed
offsets while the flow is stopped, are faust's own); a flow stop cancels the delivery where
it stands and the rest of the batch is neither delivered nor marked read: the seek that
follows every flow stop fetches it again.

One more difference, harmless: the ``broker_commit_every`` check runs once per batch, not
per record. The worker sets that count out of reach (stream/outbox.py): a commit awaited here
holds every delivery until it settles, so its commits come from faust's timer alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Coroutine

import faust
from faust.transport.consumer import CONSUMER_FETCHING

__all__ = ["drain_messages", "install"]

log = logging.getLogger("fraudstream.worker")

#: The consumer internals the loop uses, as in faust-streaming 0.15 (read in its source).
_USES = ("getmany", "callback", "_read_offset", "_commit_every", "_n_acked", "_add_gap",
         "suspend_flow", "diag", "wait_first", "commit", "consumer_stopped_errors")


def install(consumer: Any) -> bool:
    """Put :func:`drain_messages` in place of faust's loop where it was verified against
    (faust-streaming 0.15); elsewhere keep faust's own and say so."""
    if not faust.__version__.startswith("0.15.") or not all(hasattr(consumer, a) for a in _USES):
        log.warning("faust-streaming %s: keeping its own fetch loop (stream/fetch_loop.py was "
                    "checked against 0.15)", faust.__version__)
        return False
    consumer._drain_messages = drain_messages(consumer)
    return True


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
                # getmany can return at once again and again: let the loop run
                await consumer.sleep(0)
                # faust's own fetch, outside the race: a fetch cancelled half way would lose
                # what it took from the client, and while the flow is stopped getmany seeks
                # back to the committed offsets (a first version raced the fetch too and lost
                # scores in the rebalance test).
                records = [record async for record in getmany(timeout=1.0)]
                if records and not consumer.should_stop:
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


def _deliverer(consumer: Any) -> Callable[[list], Coroutine[Any, Any, None]]:
    callback = consumer.callback
    get_read_offset = consumer._read_offset.__getitem__
    set_read_offset = consumer._read_offset.__setitem__
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    sleep = asyncio.sleep

    async def deliver(records: list[tuple[Any, Any]]) -> None:
        since_yield = 0
        for tp, message in records:
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
