"""The one interface every piece of keyed worker state is used through.

Card state, pending snapshots and waiting labels are all partitioned key/value stores: in
production :class:`~fraudstream.stream.state.PartitionedTable` (RocksDB per partition plus a
changelog), in unit tests a dict (tests/store_fakes.py). The stages and the label join only
see this protocol, so they run without faust or Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

__all__ = ["PartitionedStore"]


class PartitionedStore(Protocol):
    """Keyed state split by Kafka partition: a key lives in the partition its records do."""

    def __len__(self) -> int: ...
    def get(self, partition: int, key: str) -> Any: ...
    def put(self, partition: int, key: str, value: Any) -> None: ...
    def delete(self, partition: int, key: str) -> None: ...
    def pop(self, partition: int, key: str) -> Any: ...  # delete; the value it had, or None
    def items(self, partitions: Iterable[int] | None = None) -> Iterator[tuple[str, Any]]: ...
