"""End to end against the real broker: simulate -> worker -> scores, DLQ, labels."""

from __future__ import annotations

import base64
import json

import pytest

from fraudstream.stream import simulator as sim
from fraudstream.stream.contract import DLQ_PAYLOAD_PREFIX_BYTES, validate
from fraudstream.stream.topics import create_topics

from fraudstream.stream.processes import WorkerProcess, settings_env
from kafka_helpers import json_values, produce_raw, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# One malformed message per kind the issue lists, each with the reason we expect.
MALFORMED = [
    (b"c-bad", b"{not json", "malformed JSON"),
    (b"c-bad", json.dumps({"tx_id": "m1", "ts": 1767225600, "card_id": "c-bad",
                           "terminal_id": "t"}).encode(), "amount"),
    (b"c-bad", json.dumps({"tx_id": "m2", "ts": 1767225600, "card_id": "c-bad",
                           "terminal_id": "t", "amount": "12"}).encode(), "amount"),
    (b"c-bad", b'{"tx_id":"m3","ts":1767225600,"card_id":"c-bad","terminal_id":"t","amount":NaN}',
     "finite"),
    (b"c-bad", b'{"tx_id":"m4","ts":1767225600,"card_id":"c-bad","terminal_id":"t","amount":Infinity}',
     "finite"),
    (b"c-bad", json.dumps({"tx_id": "m5", "ts": 1767225600, "card_id": "c-bad",
                           "terminal_id": "t", "amount": -3}).encode(), "minimum"),
    (b"c-bad", json.dumps({"tx_id": "m6", "ts": "last tuesday", "card_id": "c-bad",
                           "terminal_id": "t", "amount": 3}).encode(), "ts"),
    (b"c-bad", b"x" * 70_000, "limit"),
    (b"c-bad", "\u00e9t\u00e9".encode("latin-1"), "UTF-8"),
    (b"c-bad", None, "empty"),
    (b"c-other", json.dumps({"tx_id": "m7", "ts": 1767225600, "card_id": "c-bad",
                             "terminal_id": "t", "amount": 3}).encode(), "keyed by card_id"),
]


@pytest.fixture
def small_sim():
    cfg = sim.SimulationConfig(n_customers=1500, n_terminals=3000, n_days=24, seed=7)
    df = sim.simulate(cfg)
    assert len(df) >= 50_000, len(df)
    return cfg, df


def test_every_transaction_is_scored_and_bad_input_is_dead_lettered(settings, small_sim, tmp_path):
    cfg, df = small_sim
    create_topics(settings)
    env = settings_env(settings, app_id=f"e2e-{settings.topics.scores}")
    worker = WorkerProcess(env, tmp_path / "worker.log", "w1")
    try:
        counts = sim.produce_to_kafka(
            sim.events(df, cfg.label_delay_days),
            bootstrap_servers=settings.bootstrap_servers,
            topics={"transaction": settings.topics.transactions, "label": settings.topics.labels},
        )
        produce_raw(settings, settings.topics.transactions, [(k, v) for k, v, _ in MALFORMED])
        n = counts["transactions"]
        scores = read_topic(settings, settings.topics.scores, lambda r: len(r) >= n, timeout=300)
        dlq = read_topic(settings, settings.topics.transactions_dlq,
                         lambda r: len(r) >= len(MALFORMED), timeout=60)
        examples = read_topic(settings, settings.topics.training_examples,
                              lambda r: len(r) >= 0.9 * counts["labels"], timeout=120)
        scored_total = worker.metric("fraudstream_transactions_scored_total")
        dead_total = worker.metric("fraudstream_dead_letters_total")
        loop_watched = worker.metric("fraudstream_event_loop_lag_seconds_count")
        housekept = worker.metric("fraudstream_worker_periodic_job_seconds_count",
                                  {"job": "housekeeping"})
        card_writes = worker.metric("fraudstream_state_writes_total", {"table": "card-state"})
    finally:
        worker.stop()
    values = json_values(scores)
    ids = [v["tx_id"] for v in values]
    assert len(ids) == n, worker.log_tail()
    assert set(ids) == set(df["tx_id"])  # every valid tx_id scored, none lost, no strays
    # Card states are written at the commits, each changed card once (stream/state.py).
    assert 0 < card_writes <= n
    assert all(validate("scores", v) == [] for v in values[:2000])
    assert {v["decision"] for v in values} <= {"approve", "review", "decline"}

    dead = json_values(dlq)
    assert len(dead) == len(MALFORMED)
    for record in dead:
        assert validate("dlq", record) == []
        assert record["source"]["topic"] == settings.topics.transactions
    # A dead letter keeps at most the first 64 KiB of its payload (and the whole one's sha256).
    by_payload = {base64.b64decode(r["payload_b64"]): r["error"] for r in dead}
    for _, raw, fragment in MALFORMED:
        kept = (raw or b"")[:DLQ_PAYLOAD_PREFIX_BYTES]
        assert fragment in by_payload[kept], (fragment, by_payload.get(kept))
    assert scored_total == n and dead_total == len(MALFORMED)
    # The loop watch and the periodic jobs' timings run beside scoring (one sample per 50 ms
    # and per second respectively, for the whole run).
    assert loop_watched >= 20 and housekept >= 2
    # labels were joined to their scoring-time snapshots and forwarded to the trainer
    joined = json_values(examples)
    assert len(joined) >= 0.9 * counts["labels"]
    assert all(validate("training-examples", e) == [] for e in joined[:2000])
