"""``fraudstream dlq replay``: re-validation (pure) and replay against the real broker."""

from __future__ import annotations

import io
import json
import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from fraudstream.stream.contract import dead_letter, encode
from fraudstream.stream.cli.dlq import parse_time
from fraudstream.stream.dlq import ReplayRange, judge, replay
from fraudstream.stream.processes import WorkerProcess, settings_env
from fraudstream.stream.topics import create_topics
from kafka_helpers import json_values, produce_raw, read_topic
from trainer_helpers import cli, wait_for


def _tx(tx_id: str, card: str = "c1", **extra) -> dict:
    return {"tx_id": tx_id, "ts": 1767225600 + int(tx_id.split("-")[-1]), "card_id": card,
            "terminal_id": "t1", "amount": 12.5, **extra}


def _letter(raw: bytes | None, key: bytes | None, error: str = "rejected", topic: str = "transactions",
            offset: int = 0) -> bytes:
    return encode("dlq", dead_letter(error, raw, topic, 0, offset, key, 1767225600.0))


BIG = {"features": {f"f{i:02d}": i / 7 for i in range(40)}}  # about 1 KB of JSON


# --- judge: one dead letter, no Kafka ----------------------------------------------------
def test_an_oversize_letter_passes_once_the_limit_is_raised():
    raw = json.dumps(_tx("tx-1", **BIG)).encode()
    letter = _letter(raw, b"c1", f"payload is {len(raw)} bytes, over the 512-byte limit")
    still = judge("transactions", letter, max_bytes=512)
    assert not still.ok and "over the 512-byte limit" in still.error
    fixed = judge("transactions", letter, max_bytes=65536)
    assert fixed.ok and fixed.topic == "transactions" and fixed.key == b"c1"
    assert fixed.value == raw  # the original bytes, untouched
    assert fixed.tx_id == "tx-1" and "512-byte" in fixed.original_error


@pytest.mark.parametrize("raw, fragment", [
    (b"{not json", "malformed JSON"),
    (json.dumps({**_tx("tx-2"), "amount": "12"}).encode(), "amount"),
    (json.dumps({**_tx("tx-3"), "ts": "last tuesday"}).encode(), "ts"),
    (None, "malformed JSON"),  # a tombstone is kept as empty bytes
])
def test_data_a_producer_got_wrong_still_fails_with_its_reason(raw, fragment):
    verdict = judge("transactions", _letter(raw, b"c1"), max_bytes=65536)
    assert not verdict.ok and fragment in verdict.error


def test_a_letter_without_key_is_keyed_by_card_and_a_wrong_key_only_with_rekey():
    raw = json.dumps(_tx("tx-4", card="c9")).encode()
    assert judge("transactions", _letter(raw, None), 65536).key == b"c9"
    wrong = _letter(raw, b"terminal-7")
    verdict = judge("transactions", wrong, 65536)
    assert not verdict.ok and "--rekey" in verdict.error
    rekeyed = judge("transactions", wrong, 65536, rekey=True)
    assert rekeyed.ok and rekeyed.key == b"c9"


def test_labels_are_judged_against_the_labels_contract():
    label = json.dumps({"tx_id": "tx-5", "card_id": "c1", "is_fraud": True, "ts": 1767225600}).encode()
    assert judge("labels", _letter(label, b"c1", topic="labels"), 65536).topic == "labels"
    assert not judge("transactions", _letter(label, b"c1"), 65536).ok


def test_an_unreadable_dead_letter_is_reported_not_replayed():
    assert "unreadable dead letter" in judge("transactions", b"not a dead letter", 65536).error
    bad_b64 = json.dumps({"error": "x", "source": {"topic": "transactions", "partition": 0, "offset": 1},
                          "payload_b64": "***", "at": 0}).encode()
    assert "bad base64" in judge("transactions", bad_b64, 65536).error


def test_times_are_rfc3339_epoch_seconds_or_a_duration_ago():
    assert parse_time("2026-01-01T00:00:00Z") == 1767225600.0
    assert parse_time("1767225600") == 1767225600.0
    assert parse_time("1d", now=1767225600.0) == 1767225600.0 - 86400
    with pytest.raises(Exception, match="duration"):
        parse_time("yesterday")


# --- against the real broker ----------------------------------------------------------------
def _end_offsets(settings, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        return sum(consumer.end_offsets([TopicPartition(topic, p) for p in parts]).values())
    finally:
        consumer.close()


@pytest.mark.kafka
def test_dry_run_lists_ranges_and_sources_without_producing(settings):
    create_topics(settings)
    t = settings.topics
    good = [json.dumps(_tx(f"tx-{i}", card=f"c{i}")).encode() for i in range(6)]
    produce_raw(settings, t.transactions_dlq,
                [(f"c{i}".encode(), _letter(raw, f"c{i}".encode(), "validator bug", t.transactions, i))
                 for i, raw in enumerate(good)]
                + [(b"c-bad", _letter(b"{not json", b"c-bad", "malformed JSON", t.transactions, 99))])
    label = json.dumps({"tx_id": "tx-0", "card_id": "c0", "is_fraud": True, "ts": 1767225600}).encode()
    produce_raw(settings, t.labels_dlq, [(b"c0", _letter(label, b"c0", "validator bug", t.labels))])
    before = _end_offsets(settings, t.transactions) + _end_offsets(settings, t.labels)

    out = io.StringIO()
    report = replay(settings, ["transactions", "labels"], ReplayRange(), dry_run=True,
                    group="dry", out=out)
    lines = out.getvalue().splitlines()
    assert (report.read, report.republished, report.still_invalid) == (8, 7, 1)
    assert sum("would re-publish -> " + t.transactions in line for line in lines) == 6
    assert sum("would re-publish -> " + t.labels in line for line in lines) == 1
    assert any("still invalid: malformed JSON" in line for line in lines)
    assert "would re-publish 7, 1 still invalid" in report.summary()
    assert _end_offsets(settings, t.transactions) + _end_offsets(settings, t.labels) == before
    # A dry run commits nothing: the same group sees everything again.
    again = replay(settings, ["transactions"], ReplayRange(), dry_run=True, group="dry", out=io.StringIO())
    assert again.read == 7

    # An explicit time range: nothing was dead-lettered in the future.
    future = replay(settings, ["transactions"], ReplayRange(since=time.time() + 3600), dry_run=True,
                    group="dry", out=io.StringIO())
    assert future.read == 0
    # Explicit offsets on one partition read exactly that slice.
    letters = read_topic(settings, t.transactions_dlq, lambda r: len(r) >= 7)
    used = {r.partition for r in letters}
    sliced = replay(settings, ["transactions"], ReplayRange(from_offset=0, to_offset=1), dry_run=True,
                    group="dry", out=io.StringIO())
    assert sliced.read == len(used)
    one = replay(settings, ["transactions"], ReplayRange(partitions=(min(used),)), dry_run=True,
                 group="dry", out=io.StringIO())
    assert one.read == sum(r.partition == min(used) for r in letters)


@pytest.mark.kafka
@pytest.mark.slow
def test_replay_after_raising_the_size_limit_gets_the_fixed_messages_scored(settings, tmp_path):
    """The operator's story: payloads grew past FRAUDSTREAM_MAX_MESSAGE_BYTES and were
    dead-lettered; the limit is raised, the workers restarted, the DLQ replayed."""
    create_topics(settings)
    t = settings.topics
    small = [_tx(f"tx-{i}", card=f"c{i % 5}") for i in range(30)]
    big = [_tx(f"big-{i}", card=f"c{i % 5}", **BIG) for i in range(10)]
    bad = [(b"c1", b"{not json"), (b"c1", json.dumps({**_tx("bad-1"), "amount": "12"}).encode())]
    assert all(len(json.dumps(tx)) > 600 for tx in big)

    env = settings_env(settings, app_id=settings.app_id, max_message_bytes=600)
    worker = WorkerProcess(env, tmp_path / "w1.log", "w1")
    try:
        produce_raw(settings, t.transactions,
                    [(tx["card_id"].encode(), json.dumps(tx).encode()) for tx in small + big] + bad)
        read_topic(settings, t.scores, lambda r: len(r) >= len(small), timeout=120)
        dlq = read_topic(settings, t.transactions_dlq, lambda r: len(r) >= len(big) + len(bad), timeout=60)
    finally:
        worker.stop()
    assert len(dlq) == len(big) + len(bad), worker.log_tail()
    assert sum("over the 600-byte limit" in v["error"] for v in json_values(dlq)) == len(big)

    # The fix: a higher limit for the workers and the replay alike.
    fixed_env = settings_env(settings, app_id=settings.app_id, max_message_bytes=65536)
    worker = WorkerProcess(fixed_env, tmp_path / "w2.log", "w2")
    try:
        in_before = _end_offsets(settings, t.transactions)
        dry = cli(fixed_env, "dlq", "replay", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.count("would re-publish -> ") == len(big)
        listed = [line for line in dry.stdout.splitlines() if line.startswith(t.transactions_dlq + " ")]
        assert sum("  still invalid: " in line for line in listed) == len(bad)
        assert "would re-publish 10, 2 still invalid" in dry.stdout
        assert _end_offsets(settings, t.transactions) == in_before  # nothing produced

        done = cli(fixed_env, "dlq", "replay")
        assert done.returncode == 0, done.stderr
        assert "re-published 10, 2 still invalid" in done.stdout
        assert "a repeat re-publishes nothing" in done.stdout
        assert _end_offsets(settings, t.transactions) == in_before + len(big)  # invalid ones not sent

        want = {tx["tx_id"] for tx in small + big}
        scores = read_topic(settings, t.scores,
                            lambda r: want <= {v["tx_id"] for v in json_values(r)}, timeout=120)
        scored = {v["tx_id"] for v in json_values(scores)}
        assert {tx["tx_id"] for tx in big} <= scored, worker.log_tail()
        assert "bad-1" not in scored
        wait_for("the replayed transactions scored by the running worker",
                 lambda: (worker.metric("fraudstream_transactions_scored_total") or 0) >= len(big), 60, worker)

        again = cli(fixed_env, "dlq", "replay")
        assert again.returncode == 0 and "re-published 0, 0 still invalid" in again.stdout, again.stdout
        assert _end_offsets(settings, t.transactions) == in_before + len(big)
        # The replayed bytes are the originals, keyed by card: each big one is there twice.
        records = read_topic(settings, t.transactions, lambda r: len(r) >= in_before + len(big), timeout=30)
        for tx in big:
            copies = [r for r in records if r.value == json.dumps(tx).encode()]
            assert len(copies) == 2 and {r.key for r in copies} == {tx["card_id"].encode()}
        # Nothing failed again: the DLQ holds only the original letters.
        assert _end_offsets(settings, t.transactions_dlq) == len(dlq)
    finally:
        worker.stop()


@pytest.mark.kafka
def test_a_missing_dead_letter_topic_is_an_error_naming_the_setting(settings):
    env = settings_env(settings, app_id=settings.app_id)  # topics never created
    done = cli(env, "dlq", "replay", "--dry-run")
    assert done.returncode == 1
    assert f"topic '{settings.topics.transactions_dlq}' does not exist" in done.stderr
    assert "FRAUDSTREAM_TOPICS__TRANSACTIONS_DLQ" in done.stderr
