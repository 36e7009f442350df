"""faust's Kafka consumer on the worker's own event loop, not in a thread of its own.

faust-streaming's aiokafka driver runs aiokafka's consumer in a thread with a second event
loop (``AIOKafkaConsumerThread``) and hands every call to it, each fetch and commit
included, through a method queue: a future crosses the threads both ways
(``call_soon_threadsafe``, a self-pipe write), and the two loops take turns on the GIL. At
2,000 tx/s that thread took ~0.2 of a core, and the scoring loop waited for the GIL after
each of its socket calls (py-spy: ``_write_to_self`` and socket writes among the main
thread's top frames; issue 13).

Here the same driver code runs as a plain service on the worker's loop: ``call_thread``
awaits the call, and the rebalance callbacks call faust's handlers directly. aiokafka is an
asyncio client and needs no thread of its own; its heartbeat is a task on the loop, so a
loop stalled longer than the session timeout (10 s) would lose the partitions, as it would
stall every agent anyway. Everything else (fetch, commit, seek, the rebalance listener, the
livelock checks) is faust's code, unchanged.

Written against faust-streaming 0.15 and mode-streaming 0.7 (their source read):
``ServiceThread`` starts a thread in ``start`` and does its stopping there; the overrides
below put both back on the loop the service was made on.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Set

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.types import TP
from mode import Service
from mode.utils.futures import maybe_async

__all__ = ["LoopConsumer", "supported"]


def supported() -> bool:
    """Whether this faust is the one the overrides were written against."""
    return faust.__version__.startswith("0.15.")


class _LoopConsumerService(AIOKafkaConsumerThread):
    """``AIOKafkaConsumerThread`` minus the thread: started, called and stopped on one loop."""

    #: No thread will set the shutdown event: ``stop`` does the stopping itself.
    wait_for_shutdown = False

    async def start(self) -> None:
        self._thread_started.set()  # what ``maybe_start`` checks
        await Service.start(self)

    async def stop(self) -> None:
        await Service.stop(self)

    async def on_stop(self) -> None:
        await self.on_thread_stop()  # stops aiokafka's consumer (its last commit is done)

    # ServiceThread leaves these to its thread (no-ops here otherwise).
    async def _stop_children(self) -> None:
        await self._default_stop_children()

    async def _stop_futures(self) -> None:
        await self._default_stop_futures()

    async def _stop_exit_stacks(self) -> None:
        await self._default_stop_exit_stacks()

    def _stopped_set(self) -> None:
        self._stopped.set()

    def set_shutdown(self) -> None:
        self._shutdown.set()

    async def call_thread(self, fun: Callable[..., Awaitable], *args: Any, **kwargs: Any) -> Any:
        return await maybe_async(fun(*args, **kwargs))  # some are plain functions

    async def cast_thread(self, fun: Callable[..., Awaitable], *args: Any, **kwargs: Any) -> None:
        self.add_future(maybe_async(fun(*args, **kwargs)))


class LoopConsumer(Consumer):
    """faust's aiokafka ``Consumer`` whose aiokafka consumer runs on the worker's loop."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _LoopConsumerService(self, loop=self.loop, thread_loop=self.loop,
                                    beacon=self.beacon)

    async def threadsafe_partitions_revoked(self, receiver_loop: asyncio.AbstractEventLoop,
                                            revoked: Set[TP]) -> None:
        await self.on_partitions_revoked(revoked)

    async def threadsafe_partitions_assigned(self, receiver_loop: asyncio.AbstractEventLoop,
                                             assigned: Set[TP], generation_id: int = 0) -> None:
        await self.on_partitions_assigned(assigned, generation_id)
