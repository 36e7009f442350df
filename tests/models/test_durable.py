"""Durable writes: a file is replaced whole, and nothing is left behind."""

import pytest

from fraudstream.models import durable
from fraudstream.models.durable import atomic_write


def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "state.json"
    atomic_write(path, b"one", prefix=".state-")
    atomic_write(path, b"two", prefix=".state-")
    assert path.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    atomic_write(path, b"old")

    def no_rename(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(durable.os, "replace", no_rename)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
