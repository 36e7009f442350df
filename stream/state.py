"""Partitioned worker state: objects in memory, bytes in local RocksDB, changes in a changelog.

A worker's keyed state (card histories, the label join's pending snapshots and waiting labels)
lives in faust tables backed by RocksDB (``rocksdict``), one database per partition under
``FRAUDSTREAM_STATE_DIR``. The stages write it from micro-batches, which have no faust
"current event", so this class writes the partition's database and the changelog itself:

* ``put``: the in-memory object, the RocksDB value and a changelog record (through the
  :class:`~fraudstream.stream.outbox.Outbox`, whose delivery futures are checked before any
  input offset is committed).
* After every settled commit, the changelog offsets the broker acknowledged are recorded in
  each partition's database as faust's *persisted offset*. On restart faust's recovery reads
  the changelog only from there: a restarted worker restores the last second of writes, not
  the service's history. A partition new to this worker (a rebalance, a fresh disk) is read
  from the compacted changelog (topics.py: segment and cleaner settings that let the broker
  compact it), and a standby replica keeps a second worker's copy warm.

Writes go to RocksDB before their changelog record is acknowledged; a crash in between leaves
RocksDB ahead of the changelog, never behind it, and the input that caused the write is
processed again (its offset was not committed), which the stages recognise by offset.

Reads come from a bounded in-memory cache of recently written keys (``cache_size`` per
partition, least recently written evicted first); a key not there is read from RocksDB. The
label join's tables have no cache: a pending snapshot is read once, when its label comes,
and caching a week of them held ~1 GB in a 30-minute soak. The cache is dropped whenever
faust finishes a recovery, since recovery writes RocksDB behind it.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Iterator, Mapping

import faust
import orjson
from faust.types import TP

from .config import Settings

__all__ = ["PartitionedTable", "dumps", "table_options"]

log = logging.getLogger("fraudstream.worker")

#: faust's own key in every partition database: the last changelog offset it holds.
_OFFSET_KEY = b"__faust\0offset__"


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
    size); it costs a RocksDB lookup per ``put`` of a key not in memory.
    """

    def __init__(self, table: faust.Table, send: Callable[..., None], counted: bool = False,
                 cache_size: int = 0) -> None:
        self.table = table
        self.cache_size = cache_size
        self._send = send  # Outbox.add
        self.changelog = table.changelog_topic.get_topic_name()
        self.counted = counted
        self._cache: dict[int, dict[str, Any]] = {}
        self._sizes: dict[int, int] = {}
        self.partitions: set[int] = set()  # active partitions, set after each recovery

    # -- the store ---------------------------------------------------------------------
    def _db(self, partition: int) -> Any:
        # Through faust's store every time: it closes a revoked partition's database by
        # dropping its handle, and a handle kept here would hold RocksDB's lock.
        return self.table.data._db_for_partition(partition)

    def get(self, partition: int, key: str) -> Any:
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
        cache = self._cache.setdefault(partition, {})
        k, v = dumps(key), dumps(value)
        db = self._db(partition)
        cached = cache.pop(key, None) is not None
        if self.counted and not cached and db.get(k) is None:
            self._sizes[partition] = self._sizes.get(partition, 0) + 1
        self._remember(cache, key, value)  # popped above: now the most recent
        db.put(k, v)
        self._send(self.changelog, k, v, partition)

    def _remember(self, cache: dict[str, Any], key: str, value: Any) -> None:
        """Keep ``value`` as the most recent entry, evicting the oldest past ``cache_size``."""
        if self.cache_size:
            cache[key] = value
            if len(cache) > self.cache_size:
                del cache[next(iter(cache))]

    def delete(self, partition: int, key: str) -> None:
        cache = self._cache.setdefault(partition, {})
        k = dumps(key)
        db = self._db(partition)
        if self.counted and (cache.pop(key, None) is not None or db.get(k) is not None):
            self._sizes[partition] = max(0, self._sizes.get(partition, 0) - 1)
        else:
            cache.pop(key, None)
        db.delete(k)
        self._send(self.changelog, k, None, partition)  # a tombstone

    def items(self, partitions: Iterable[int] | None = None) -> Iterator[tuple[str, Any]]:
        """Every key and value of ``partitions`` (default: the active ones), from RocksDB."""
        for partition in sorted(self.partitions if partitions is None else partitions):
            for k, v in self._db(partition).items():
                if k != _OFFSET_KEY:
                    yield orjson.loads(k), orjson.loads(v)

    def __len__(self) -> int:
        return sum(self._sizes.get(p, 0) for p in self.partitions)

    # -- lifecycle ---------------------------------------------------------------------
    def on_recovered(self, active: set[int]) -> None:
        """faust finished a recovery: forget the cache, recount the active partitions."""
        self._cache.clear()
        self.partitions = set(active)
        if self.counted:
            self._sizes = {p: sum(1 for k in self._db(p).keys() if k != _OFFSET_KEY)
                           for p in self.partitions}

    def persist_offsets(self, delivered: Mapping[tuple[str, int], int]) -> None:
        """Record acknowledged changelog offsets as faust's persisted offsets (see module doc)."""
        store = self.table.data
        for (topic, partition), offset in delivered.items():
            if topic == self.changelog and partition in self.partitions:
                store.set_persisted_offset(TP(topic, partition), offset)
