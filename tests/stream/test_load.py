"""The benchmark's load generator (pace or pv, then kcat) against the real broker: every line
becomes one record with its key, at the offered rate, with nothing on the command line to leak;
and the pacer's arrivals have the shape it promises."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np

import pytest

from fraudstream.stream.load import LoadTools, PacedLoad, PacedProducer, split_by_key, write_lines
from fraudstream.stream.topics import create_topics
from kafka_helpers import read_topic


def _arrivals(cmd: list[str]) -> tuple[list[bytes], np.ndarray]:
    """The lines a pacer writes and when each arrived (seconds since the first)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    lines, stamps = [], []
    for line in proc.stdout:
        stamps.append(time.monotonic())
        lines.append(line)
    assert proc.wait(timeout=30) == 0
    return lines, np.array(stamps) - stamps[0]


@pytest.mark.parametrize("arrivals", ["steady", "poisson"])
def test_pace_offers_every_line_in_order_at_the_rate_without_bursts(tmp_path: Path, arrivals):
    path = tmp_path / "lines.txt"
    path.write_bytes(b"".join(b"card-%d\t{}\n" % i for i in range(3000)))
    tools = LoadTools.find()
    lines, at = _arrivals(tools.pacer(2000, path, arrivals, seed=7))
    assert b"".join(lines) == path.read_bytes()
    assert 1.3 <= at[-1] <= 1.8  # 3,000 lines at 2,000/s
    per_10ms = np.bincount((at * 100).astype(int))
    # pv -L 2000 would pass 200 at once every ~90 ms; pace: ~20 per 10 ms (Poisson: p99 ~31)
    assert np.percentile(per_10ms, 99) <= (26 if arrivals == "steady" else 45)
    if arrivals == "steady":
        assert np.percentile(per_10ms[1:-1], 5) >= 14  # no gaps either
    else:  # exponential gaps: a coefficient of variation near 1, not the steady ~0
        gaps = np.diff(at[::10])  # tenth lines: the millisecond ticks matter less
        assert 0.2 < gaps.std() / gaps.mean() < 0.6  # sum of ten: 1/sqrt(10) ~ 0.32


def test_pace_refuses_bad_usage_and_says_why(tmp_path: Path):
    pace = str(LoadTools.find().pace)
    for args in ([], ["0", "f"], ["-x", "10", "f"], ["ten", "f"]):
        got = subprocess.run([pace, *args], capture_output=True)
        assert got.returncode == 2 and b"usage: pace" in got.stderr
    got = subprocess.run([pace, "10", str(tmp_path / "missing")], capture_output=True)
    assert got.returncode == 1 and b"No such file" in got.stderr


def test_lines_with_a_tab_or_newline_are_refused(tmp_path: Path):
    assert write_lines(tmp_path / "ok", [(b"c1", b'{"a":1}'), (b"c2", b"{}")]) == 2
    assert (tmp_path / "ok").read_bytes() == b'c1\t{"a":1}\nc2\t{}\n'
    for key, value in ((b"c\t1", b"{}"), (b"c1", b'{"a":\n1}'), (b"c\n", b"{}")):
        with pytest.raises(ValueError, match="tab or newline"):
            write_lines(tmp_path / "bad", [(key, value)])


def test_split_by_key_keeps_every_record_and_each_keys_order():
    records = [(f"card-{i % 13}".encode(), f'{{"i":{i}}}'.encode()) for i in range(500)]
    groups = split_by_key(records, 4)
    assert len(groups) == 4 and sorted(sum(groups, [])) == sorted(records)
    for group in groups:  # a key lives in one group, its records in their original order
        assert not {k for k, _ in group} & {k for g in groups if g is not group for k, _ in g}
        for key in {k for k, _ in group}:
            assert [v for k, v in group if k == key] == [v for k, v in records if k == key]
    assert split_by_key(records, 1) == [records]
    assert split_by_key([(b"only", b"{}")], 8) == [[(b"only", b"{}")]]  # no empty streams
    with pytest.raises(ValueError, match="1 or more"):
        split_by_key(records, 0)


def test_missing_tools_say_how_to_get_them(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no system kcat either
    with pytest.raises(RuntimeError, match="make tools"):
        LoadTools.find(tmp_path)
    for tool in ("kcat/usr/bin/kcat", "pv/usr/bin/pv"):  # unpacked, but pace never built
        (tmp_path / tool).parent.mkdir(parents=True)
        (tmp_path / tool).write_text("")
    with pytest.raises(RuntimeError, match="pace not found.*make tools"):
        LoadTools.find(tmp_path)


@pytest.mark.kafka
@pytest.mark.parametrize("arrivals", ["poisson", "pv"])
def test_paced_lines_arrive_as_keyed_records_at_the_offered_rate(settings, tmp_path: Path,
                                                                 arrivals):
    create_topics(settings)
    topic = settings.topics.transactions
    lines = [(f"card-{i % 7}".encode(), f'{{"i":{i}}}'.encode()) for i in range(400)]
    path = tmp_path / "load.txt"
    write_lines(path, lines)
    started = time.monotonic()
    producer = PacedProducer(LoadTools.find(), settings, topic, path, rate=200, arrivals=arrivals)
    producer.wait(timeout=60)
    took = time.monotonic() - started
    records = read_topic(settings, topic, lambda r: len(r) >= 400, timeout=60)
    assert sorted((r.key, r.value) for r in records) == sorted(lines)
    # one card, one partition (the same murmur2 partitioner as every other client)
    assert all(len({r.partition for r in records if r.key == k}) == 1 for k, _ in lines[:7])
    stamps = sorted(r.timestamp for r in records)
    assert took >= 1.5 and (stamps[-1] - stamps[0]) / 1000 >= 1.5  # 400 lines at 200/s: ~2 s
    assert not Path(producer._config).exists()  # the client config (it may hold a password) is gone


@pytest.mark.kafka
def test_a_load_split_over_streams_arrives_whole_in_each_cards_order(settings, tmp_path: Path):
    create_topics(settings)
    topic = settings.topics.transactions
    lines = [(f"card-{i % 11}".encode(), f'{{"i":{i}}}'.encode()) for i in range(600)]
    started = time.monotonic()
    load = PacedLoad(LoadTools.find(), settings, topic, lines, tmp_path / "load.txt", rate=300,
                     streams=3)
    assert len(load.producers) == 3
    load.wait(timeout=60)
    took = time.monotonic() - started
    records = read_topic(settings, topic, lambda r: len(r) >= 600, timeout=60)
    assert sorted((r.key, r.value) for r in records) == sorted(lines)
    for key in {k for k, _ in lines}:  # one card: one partition, in the order it was written
        got = sorted((r.offset, r.value) for r in records if r.key == key)
        assert [v for _, v in got] == [v for k, v in lines if k == key]
    assert took >= 1.5  # 600 lines at 300/s over three streams: ~2 s, not as fast as it can


@pytest.mark.kafka
def test_an_unreachable_broker_is_an_error_not_a_silent_loss(settings, tmp_path: Path):
    path = tmp_path / "load.txt"
    write_lines(path, [(b"c1", b"{}")])
    dead = settings.model_copy(update={"broker_url": "kafka://127.0.0.1:9"})
    producer = PacedProducer(LoadTools.find(), dead, "t", path, rate=None)
    with pytest.raises(RuntimeError, match="kcat failed"):
        producer.wait(timeout=120)
