"""An in-memory :class:`~fraudstream.stream.store.PartitionedStore` for unit tests."""


class DictStore(dict):
    """The partitioned store over one dict (keys are unique across partitions here, as card,
    transaction and label ids are in the tests)."""

    def get(self, partition, key, default=None):
        return super().get(key, default)

    def put(self, partition, key, value):
        self[key] = value

    def delete(self, partition, key):
        dict.pop(self, key, None)

    def pop(self, partition, key):
        return dict.pop(self, key, None)

    def items(self, partitions=None):
        return list(super().items())
