"""Every compression codec a real producer uses (gzip, snappy, lz4, zstd) is consumed.

librdkafka and Java producers often compress. A batch in a codec whose library is missing
makes aiokafka raise ``UnsupportedCodecError`` in the worker's fetcher (the worker stops
consuming) and kafka-python fail in the trainer and the CLI tools. This test produces with
a real kafka-python producer per codec, checks on the broker's disk that the batches are
stored in that codec, and then reads them back through the workers (faust -> aiokafka) and
through the kafka-python consumers of the trainer (window rebuild), ``dlq replay`` and the
test helpers.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from prometheus_client import CollectorRegistry

from fraudstream.stream import simulator as sim
from fraudstream.stream.dlq import ReplayRange, replay
from fraudstream.stream.processes import WorkerProcess, settings_env
from fraudstream.stream.topics import create_topics
from fraudstream.stream.trainer import Trainer
from kafka_helpers import json_values, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# The codec ids of the record batch attributes (lowest 3 bits), as Kafka defines them.
CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
# What a worker logs when its fetcher cannot decode a batch (aiokafka's error and message),
# or when an agent crashes: the test stops waiting at once.
WORKER_ERRORS = ("UnsupportedCodecError", "compression codec not found", "Crashed reason=")


def _producer(settings, codec: str) -> KafkaProducer:
    # A real client compressing its batches; linger/batch size so a batch holds many records.
    return KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                         compression_type=codec, linger_ms=20, batch_size=64 * 1024,
                         client_id=f"codec-test-{codec}")


def _stored_codecs(settings, topic: str) -> Counter:
    """How many records of ``topic`` the broker stored in each codec (0: none), read from its
    log segment files (record batch v2: the 16-bit attributes follow base offset, length,
    leader epoch, magic and CRC; the record count ends the 61-byte header).

    So the test cannot pass vacuously if a producer or the broker stored the records plain.
    (kafka-python sends a batch plain when compressing would not make it smaller.)
    """
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        described = admin.describe_log_dirs()
    finally:
        admin.close()
    dirs = {d["log_dir"] for broker in described for d in broker["log_dirs"]}
    assert dirs, described
    records: Counter = Counter()
    for log_dir in dirs:
        for segment in Path(log_dir).glob(f"{topic}-*/*.log"):
            if segment.parent.name.rsplit("-", 1)[0] != topic:
                continue
            data = segment.read_bytes()
            pos = 0
            while pos + 61 <= len(data):
                _, length = struct.unpack_from(">qi", data, pos)
                if length <= 0 or pos + 12 + length > len(data):
                    break
                assert data[pos + 16] == 2, f"record batch magic {data[pos + 16]} in {segment}"
                codec = struct.unpack_from(">h", data, pos + 21)[0] & 0x07
                records[codec] += struct.unpack_from(">i", data, pos + 57)[0]
                pos += 12 + length
    return records


def test_workers_trainer_and_tools_consume_every_codec(settings, tmp_path):
    cfg = sim.SimulationConfig(n_customers=200, n_terminals=400, n_days=4, seed=11,
                               label_delay_days=0.5)
    df = sim.simulate(cfg)
    n_tx = len(df)
    # The stream in event-time order, cut into one part per codec with a quarter of the
    # transactions each (and the labels that fall among them; the last part takes the rest).
    parts: list[list] = [[] for _ in CODECS]
    seen = 0
    for event in sim.events(df, cfg.label_delay_days):
        parts[min(seen * len(CODECS) // n_tx, len(CODECS) - 1)].append(event)
        seen += event[0] == "transaction"
    topics = {"transaction": settings.topics.transactions, "label": settings.topics.labels}

    create_topics(settings)
    env = settings_env(settings, app_id=f"codecs-{settings.topics.scores}")
    worker = WorkerProcess(env, tmp_path / "worker.log", "w1")
    log = tmp_path / "worker.log"

    def worker_failed() -> bool:
        text = log.read_text(errors="replace")
        return worker.proc.poll() is not None or any(e in text for e in WORKER_ERRORS)

    try:
        # Each part in its codec, in turn; plus one record per codec that the worker must
        # dead-letter (keyed by another card), so the DLQ tooling below has letters to read.
        sent: dict[str, dict[str, int]] = {}
        for i, codec in enumerate(CODECS):
            producer = _producer(settings, codec)
            try:
                counts = sim.produce_to_kafka(parts[i], settings.bootstrap_servers, topics,
                                              producer=producer)
                bad = {"tx_id": f"rekey-{codec}", "ts": 1767225600 + i, "card_id": f"c-{codec}",
                       "terminal_id": "t-1", "amount": 10.0 + i}
                producer.send(settings.topics.transactions, key=b"c-someone-else",
                              value=json.dumps(bad).encode())
                producer.flush()
            finally:
                producer.close()
            sent[codec] = counts
            # a few hundred transactions and some labels in every codec
            assert counts["transactions"] >= 300 and counts["labels"] >= 50, (codec, counts)
        n_labels = sum(c["labels"] for c in sent.values())
        assert sum(c["transactions"] for c in sent.values()) == n_tx

        scores = read_topic(settings, settings.topics.scores,
                            lambda r: len(r) >= n_tx or worker_failed(), timeout=120)
        assert not worker_failed(), worker.log_tail()
        dlq = read_topic(settings, settings.topics.transactions_dlq,
                         lambda r: len(r) >= len(CODECS) or worker_failed(), timeout=30)
        examples = read_topic(settings, settings.topics.training_examples,
                              lambda r: len(r) >= 0.9 * n_labels or worker_failed(),
                              timeout=60)
        scored_total = worker.metric("fraudstream_transactions_scored_total")
        assert not worker_failed(), worker.log_tail()  # the fetcher is alive after all four
    finally:
        worker.stop()

    # Workers (faust -> aiokafka): every valid transaction scored, once; none lost.
    ids = [v["tx_id"] for v in json_values(scores)]
    assert len(ids) == n_tx and set(ids) == set(df["tx_id"]), worker.log_tail()
    assert scored_total == n_tx
    dead = json_values(dlq)
    assert sorted(json.loads(base64.b64decode(d["payload_b64"]))["tx_id"] for d in dead) \
        == sorted(f"rekey-{c}" for c in CODECS)
    assert len(examples) >= 0.9 * n_labels  # labels in every codec were joined

    # The records really were stored in each codec (not recompressed, nor sent plain).
    for topic, kind in [(settings.topics.transactions, "transactions"),
                        (settings.topics.labels, "labels")]:
        stored = _stored_codecs(settings, topic)
        for codec, codec_id in CODECS.items():
            assert stored[codec_id] >= 0.9 * sent[codec][kind], (topic, codec, dict(stored))

    # kafka-python consumers (trainer, dlq replay, test helpers) on compressed topics: the
    # worker's own outputs re-produced, a quarter in each codec, to fresh topics.
    suffix = "-compressed"
    other = settings.model_copy(update={"topics": settings.topics.model_copy(update={
        "training_examples": settings.topics.training_examples + suffix,
        "transactions_dlq": settings.topics.transactions_dlq + suffix})})
    create_topics(other)
    ex_quarter = -(-len(examples) // len(CODECS))
    for i, codec in enumerate(CODECS):
        producer = _producer(other, codec)
        try:
            for r in examples[i * ex_quarter:(i + 1) * ex_quarter]:
                producer.send(other.topics.training_examples, key=r.key, value=r.value)
            for letter in dlq:  # all dead letters in each codec, in one batch
                producer.send(other.topics.transactions_dlq, key=letter.key, value=letter.value,
                              partition=0)
            producer.flush()
        finally:
            producer.close()
    stored = _stored_codecs(other, other.topics.training_examples)
    for codec, codec_id in CODECS.items():
        assert stored[codec_id] >= 0.9 * len(examples) / len(CODECS) - 1, (codec, dict(stored))
    stored = _stored_codecs(other, other.topics.transactions_dlq)
    assert stored == {c: len(dlq) for c in CODECS.values()}, dict(stored)

    metrics = CollectorRegistry()
    trainer = Trainer(other, metrics)
    try:
        stats = trainer.reader.rebuild()
    finally:
        trainer.reader.close()
    example_ids = {json.loads(r.value)["tx_id"] for r in examples}
    assert stats["records_read"] == len(examples)
    assert stats["rows"] == len(example_ids)
    invalid = metrics.get_sample_value("fraudstream_trainer_examples_total", {"outcome": "invalid"})
    assert not invalid

    out = io.StringIO()
    report = replay(other, ["transactions"], ReplayRange(from_beginning=True), dry_run=True,
                    group=f"codecs-replay-{settings.topics.scores}", rekey=True, out=out,
                    idle_timeout_s=20)
    n_letters = len(CODECS) * len(dlq)
    assert (report.read, report.republished, report.still_invalid) == (n_letters, n_letters, 0), \
        out.getvalue()

    again = read_topic(other, other.topics.training_examples,
                       lambda r: len(r) >= len(examples), timeout=30)
    assert {json.loads(r.value)["tx_id"] for r in again} == example_ids
