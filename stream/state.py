"""Partitioned worker state: objects in memory, bytes in local RocksDB, changes in a changelog.

A worker's keyed state (card histories, the label join's pending snapshots and waiting labels)
lives in faust tables backed by RocksDB (``rocksdict``), one database per partition under
``FRAUDSTREAM_STATE_DIR``. The stages write it from micro-batches, which have no faust
"current event", so this class writes the partition's database and the changelog itself:

* ``put`` and ``delete`` change memory only: the key joins the table's *dirty* set.
* :meth:`PartitionedTable.checkpoint` runs at every offset commit, before the commit (the
  :class:`~fraudstream.stream.outbox.Outbox` calls it from ``settle``): each dirty key is
  written once, to RocksDB and as one changelog record, however often it changed since the
  last commit, and a key put and deleted in between (a snapshot joined with its label within
  the second) is never written at all. This is what recovery needs and no more: the input
  offset is committed only after the state it produced is in the changelog, and a crash
  loses at most the uncommitted input's state, which its replay rebuilds (the stages
  recognise a replayed record by its offset). Kafka Streams commits its stores the same way.
* After every settled commit, the changelog offsets the broker acknowledged are recorded in
  each partition's database as faust's *persisted offset*. On restart faust's recovery reads
  the changelog only from there: a restarted worker restores the last second of writes, not
  the service's history. A partition new to this worker (a rebalance, a fresh disk) is read
  from the compacted changelog (topics.py: segment and cleaner settings that let the broker
  compact it), and a standby replica keeps a second worker's copy warm.

A checkpoint writes RocksDB before the changelog record is acknowledged; a crash in between
leaves RocksDB ahead of the changelog, never behind it, and the input that caused the write is
processed again (its offset was not committed), which the stages recognise by offset.

Reads see the dirty keys first, then a bounded in-memory cache of recently checkpointed keys
(``cache_size`` per partition, least recently written evicted first); a key in neither is
read from RocksDB. The
label join's tables have no cache: a pending snapshot is read once, when its label comes,
and caching a week of them held ~1 GB in a 30-minute soak. The cache is dropped whenever
faust finishes a recovery, since recovery writes RocksDB behind it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable, Iterator, Mapping

import faust
import orjson
from faust.types import TP
from rocksdict import WriteBatch

from .config import Settings

__all__ = ["PartitionedTable", "dumps", "table_options"]

log = logging.getLogger("fraudstream.worker")

#: faust's own key in every partition database: the last changelog offset it holds.
_OFFSET_KEY = b"__faust\0offset__"

#: A delete waiting for the next checkpoint.
_DELETED = object()

#: Keys a checkpoint writes between two pauses, and how long it pauses: a second's dirty keys
#: at 2,000 tx/s (~1,500 card states, 15-25 ms of RocksDB writes) would otherwise hold
#: scoring that long. The pause is a real sleep, not a bare yield: faust's consumer thread
#: (``kafka_consumer_thread``) needs the GIL to hand fetched transactions over, and with
#: yields alone it got it only every few milliseconds (Python's switch interval), so a commit
#: delayed the transactions fetched meanwhile by 40-60 ms (measured, Poisson arrivals at
#: 2,000 tx/s). A commit now takes ~2.5 ms per chunk instead of ~1.5; only recovery cares.
#: With the consumer on the loop (the default) the sleep lets the fetcher and the scoring
#: agent run between chunks, as a yield would.
_CHECKPOINT_CHUNK = 64
_CHECKPOINT_PAUSE_S = 0.001


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON for the hot path (orjson: a card's state takes ~3 us, not ~75 us).

    orjson would write a non-finite float as ``null``; none reaches here, because validation
    rejects non-finite input and every feature is a finite function of it.
    """
    return orjson.dumps(value, default=_to_dict)


def _to_dict(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
    return to_dict()


def table_options(s: Settings) -> dict[str, Any]:
    """Keyword arguments of every worker table (``app.Table(name, **table_options(s))``)."""
    return dict(partitions=s.partitions, default=None,
                # faust's RocksDB defaults are 64 MiB memtables (x3) and a 2 GiB block cache
                # per database, and a worker opens one database per partition per table (24 at
                # 8 partitions): RSS grew with every write in a soak.
                options={"driver": "rocksdict", "write_buffer_size": 4 << 20,
                         "max_write_buffer_number": 2, "block_cache_size": 8 << 20},
                schema=faust.Schema(key_serializer="json", value_serializer="json"))


class PartitionedTable:
    """One faust table's state, written with an explicit partition: the production
    :class:`~fraudstream.stream.store.PartitionedStore`.

    ``counted`` keeps the number of keys per partition (the label join caps its stores by
    size); it costs a RocksDB lookup per ``put`` of a key not in memory, and lets a key put
    and deleted between two checkpoints skip RocksDB and the changelog altogether.
    """

    def __init__(self, table: faust.Table, send: Callable[..., None], counted: bool = False,
                 cache_size: int = 0) -> None:
        self.table = table
        self.cache_size = cache_size
        self._send = send  # Outbox.add
        self.changelog = table.changelog_topic.get_topic_name()
        self.counted = counted
        self._cache: dict[int, dict[str, Any]] = {}
        # Changes since the last checkpoint ((value, its JSON) or _DELETED), and those a
        # checkpoint is writing now: reads look at both before the cache and RocksDB. The
        # JSON is taken at put: the stages go on changing the objects they put.
        self._dirty: dict[int, dict[str, Any]] = {}
        self._flushing: dict[int, dict[str, Any]] = {}
        # Dirty keys that are in neither RocksDB nor the changelog (counted tables only):
        # deleting one just forgets it.
        self._fresh: dict[int, set[str]] = {}
        self._checkpointing: asyncio.Lock | None = None
        # Partitions revoked while a checkpoint runs (it yields between chunks, and faust's
        # rebalance does not wait for a commit): the checkpoint stops writing them.
        self._revoked: set[int] = set()
        self._sizes: dict[int, int] = {}
        self.partitions: set[int] = set()  # active partitions, set after each recovery

    # -- the store ---------------------------------------------------------------------
    def _db(self, partition: int) -> Any:
        # Through faust's store every time: it closes a revoked partition's database by
        # dropping its handle, and a handle kept here would hold RocksDB's lock.
        return self.table.data._db_for_partition(partition)

    def get(self, partition: int, key: str) -> Any:
        for layer in (self._dirty, self._flushing):
            changes = layer.get(partition)
            if changes and key in changes:
                change = changes[key]
                return None if change is _DELETED else change[0]
        cache = self._cache.setdefault(partition, {})
        try:
            return cache[key]
        except KeyError:
            pass
        raw = self._db(partition).get(dumps(key))
        value = None if raw is None else orjson.loads(raw)
        if value is not None:
            self._remember(cache, key, value)
        return value

    def put(self, partition: int, key: str, value: Any) -> None:
        changes = self._dirty.setdefault(partition, {})
        if self.counted and (key not in changes or changes[key] is _DELETED):
            if self.get(partition, key) is None:
                self._sizes[partition] = self._sizes.get(partition, 0) + 1
                if key not in changes:  # not stored anywhere: a delete can just forget it
                    self._fresh.setdefault(partition, set()).add(key)
        changes[key] = (value, dumps(value))

    def delete(self, partition: int, key: str) -> None:
        self.pop(partition, key)

    def pop(self, partition: int, key: str) -> Any:
        """Delete ``key`` and return its value (None if it had none): one lookup, not two.
        A key with no value is left alone: no tombstone for what was never written (the join
        pops a waiting label for every snapshot, and a pending snapshot for every label)."""
        value = self.get(partition, key)
        if value is None:
            return None
        changes = self._dirty.setdefault(partition, {})
        if self.counted:
            self._sizes[partition] = max(0, self._sizes.get(partition, 0) - 1)
        fresh = self._fresh.get(partition)
        if fresh is not None and key in fresh:
            fresh.discard(key)
            del changes[key]
        else:
            changes[key] = _DELETED
        self._cache.get(partition, {}).pop(key, None)
        return value

    def _remember(self, cache: dict[str, Any], key: str, value: Any) -> None:
        """Keep ``value`` as the most recent entry, evicting the oldest past ``cache_size``."""
        if self.cache_size:
            cache.pop(key, None)
            cache[key] = value
            if len(cache) > self.cache_size:
                del cache[next(iter(cache))]

    async def checkpoint(self) -> int:
        """Write every change since the last checkpoint to RocksDB and the changelog (through
        the Outbox); returns how many keys it wrote. Called before offsets are committed.

        Each key is written as it was put (its JSON was taken then), and the writes pause
        every few dozen keys (:data:`_CHECKPOINT_CHUNK`).
        """
        if self._checkpointing is None:
            self._checkpointing = asyncio.Lock()
        async with self._checkpointing:
            dirty, self._dirty, self._fresh = self._dirty, {}, {}
            self._flushing = dirty
            self._revoked = set()
            written = 0
            try:
                for partition, changes in dirty.items():
                    if partition in self._revoked:
                        continue
                    db = self._db(partition)
                    cache = self._cache.setdefault(partition, {})
                    # A chunk's writes go to RocksDB as one batch: ~1.2 us a key less than
                    # a put each (measured, 1 KB values), written before each pause.
                    batch = WriteBatch(raw_mode=True)
                    for key, change in changes.items():
                        k = dumps(key)
                        if change is _DELETED:
                            batch.delete(k)
                            cache.pop(key, None)
                            self._send(self.changelog, k, None, partition)  # a tombstone
                        else:
                            batch.put(k, change[1])
                            self._remember(cache, key, change[0])
                            self._send(self.changelog, k, change[1], partition)
                        written += 1
                        if written % _CHECKPOINT_CHUNK == 0:
                            db.write(batch)
                            batch = WriteBatch(raw_mode=True)
                            await asyncio.sleep(_CHECKPOINT_PAUSE_S)
                            if partition in self._revoked:
                                # Its next owner replays the uncommitted input; and faust
                                # has closed its database, which reopened here would hold
                                # RocksDB's lock against faust's own reopening.
                                break
                    else:
                        db.write(batch)
            finally:
                self._flushing = {}
            return written

    async def revoke(self, partitions: Iterable[int]) -> None:
        """A rebalance revokes ``partitions``: let a checkpoint in progress finish writing
        them while they are still ours (faust's rebalance does not wait for a commit; the
        group reassigns them only after this worker rejoins, which waits for this), then
        forget what changed since."""
        if self._checkpointing is not None:
            async with self._checkpointing:
                pass
        self.forget(partitions)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the uncheckpointed changes of ``partitions`` (revoked): their input's offsets
        were not committed, so their next owner processes it again; written here they would
        overwrite that owner's state."""
        for partition in partitions:
            self._revoked.add(partition)
            self._dirty.pop(partition, None)
            self._fresh.pop(partition, None)
            self._cache.pop(partition, None)  # the stages change cached objects in place

    def items(self, partitions: Iterable[int] | None = None) -> Iterator[tuple[str, Any]]:
        """Every key and value of ``partitions`` (default: the active ones): RocksDB's, with
        the changes not checkpointed yet."""
        for partition in sorted(self.partitions if partitions is None else partitions):
            changes = {**self._flushing.get(partition, {}), **self._dirty.get(partition, {})}
            for k, v in self._db(partition).items():
                if k != _OFFSET_KEY:
                    key = orjson.loads(k)
                    if key not in changes:
                        yield key, orjson.loads(v)
            for key, change in changes.items():
                if change is not _DELETED:
                    yield key, change[0]

    def __len__(self) -> int:
        return sum(self._sizes.get(p, 0) for p in self.partitions)

    # -- lifecycle ---------------------------------------------------------------------
    def on_recovered(self, active: set[int]) -> None:
        """faust finished a recovery: forget the cache and the changes of partitions no
        longer ours, recount the active partitions."""
        self._cache.clear()
        self.forget(set(self._dirty) - set(active))
        self.partitions = set(active)
        if self.counted:
            self._sizes = {p: self._count(p) for p in self.partitions}

    def _count(self, partition: int) -> int:
        """Keys in RocksDB, corrected by the changes not checkpointed yet."""
        db = self._db(partition)
        n = sum(1 for k in db.keys() if k != _OFFSET_KEY)
        for key, change in {**self._flushing.get(partition, {}),
                            **self._dirty.get(partition, {})}.items():
            n += (change is not _DELETED) - (db.get(dumps(key)) is not None)
        return n

    def persist_offsets(self, delivered: Mapping[tuple[str, int], int]) -> None:
        """Record acknowledged changelog offsets as faust's persisted offsets (see module doc)."""
        store = self.table.data
        for (topic, partition), offset in delivered.items():
            if topic == self.changelog and partition in self.partitions:
                store.set_persisted_offset(TP(topic, partition), offset)
