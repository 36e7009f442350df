"""The trainer's publisher with an in-memory Kafka: what a cycle's result leaves in the registry,
what it announces on model-updates and synthetic-frauds, and the reconciliation at start.

The registry is the real one in a tmp dir (files and checksums are what it is about); the
Kafka producer is a fake that keeps what was sent, so the real ``announce`` and
``publish_synthetic`` encode the records.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from fraudstream.models.features import FEATURE_NAMES, schema_hash
from fraudstream.models.registry import DIFFUSION_FILE, MODEL_FILE, ONLINE_FILE, Registry
from fraudstream.stream import publisher as publisher_module
from fraudstream.stream.announce import RefusalLog, check_announcement
from fraudstream.stream.config import load_settings
from fraudstream.stream.metrics import TrainerMetrics
from fraudstream.stream.publisher import Publisher

SCHEMA = schema_hash(FEATURE_NAMES)
WINDOW_LAST_TS = 1_790_000_000.0


class FakeKafka:
    """A KafkaProducer that keeps every record; ``get()`` on a send returns at once."""

    def __init__(self, sent: list) -> None:
        self.sent = sent
        self.closed = False

    def send(self, topic, key=None, value=None):
        self.sent.append((topic, key, value))
        return SimpleNamespace(get=lambda timeout=None: None)

    def close(self, timeout=None):
        self.closed = True


class FakeDiffusion:
    def save(self, path):
        path.write_bytes(b"diffusion weights")


def result(promote: bool, synthetic: np.ndarray | None = None, diffusion=None) -> SimpleNamespace:
    """What ``run_cycle`` returns, as much of it as the publisher reads."""
    report = {"split": {"window_last_ts": WINDOW_LAST_TS},
              "holdout": {"challenger": {"average_precision": 0.5}},
              "synthetic": {"n_requested": 0 if synthetic is None else len(synthetic)}}
    return SimpleNamespace(
        report=report, promote=promote, reason="beats the champion" if promote else "no gain",
        challenger=SimpleNamespace(to_bytes=lambda: b"xgboost model"), diffusion=diffusion,
        synthetic=synthetic, synthetic_verdict="accepted" if synthetic is not None else "none")


@pytest.fixture
def sent(monkeypatch) -> list:
    records: list = []
    monkeypatch.setattr(publisher_module, "producer", lambda settings: FakeKafka(records))
    monkeypatch.setattr(publisher_module, "format_report", lambda report: "(report)")
    return records


def make_publisher(tmp_path, **overrides) -> Publisher:
    settings = load_settings(model_registry=tmp_path / "registry", trainer_metrics_port=0,
                             **overrides)
    registry = Registry(settings.model_registry, keep=settings.trainer_keep_versions)
    return Publisher(settings, registry, list(FEATURE_NAMES), SCHEMA,
                     TrainerMetrics(CollectorRegistry()), RefusalLog(logging.getLogger("test")))


def on(sent: list, topic: str) -> list[tuple[bytes, dict]]:
    return [(key, json.loads(value)) for t, key, value in sent if t == topic]


def test_a_winner_is_written_promoted_and_announced(tmp_path, sent):
    p = make_publisher(tmp_path)
    online = tmp_path / "registry" / "online"
    online.mkdir(parents=True)
    (online / "worker-1.pkl").write_bytes(b"online learner")
    outcome = p.publish(result(promote=True, diffusion=FakeDiffusion()), "request",
                        effect=None, ledger={"summary": {"n": 0}})
    assert outcome == "promoted"
    (version,) = p.registry.versions()
    assert p.registry.champion() == version
    meta = p.registry.verify(version, SCHEMA).metadata
    assert set(meta["files"]) == {MODEL_FILE, DIFFUSION_FILE, ONLINE_FILE}
    assert meta["status"] == "champion" and meta["trigger"] == "request"
    assert meta["feature_names"] == list(FEATURE_NAMES) and meta["ledger"] == {"summary": {"n": 0}}
    assert meta["synthetic_published"] == {"n": 0, "at_event_ts": WINDOW_LAST_TS}
    ((key, payload),) = on(sent, p.settings.topics.model_updates)
    assert key == b"champion" and payload["version"] == version
    assert payload["action"] == "promote" and payload["reason"] == "beats the champion"
    assert check_announcement(key, json.dumps(payload).encode()).ok


def test_a_loser_stays_a_challenger_and_nothing_is_announced(tmp_path, sent):
    p = make_publisher(tmp_path, trainer_shadow_challengers=False)
    assert p.publish(result(promote=False), "schedule", effect=None) == "kept_champion"
    (version,) = p.registry.versions()
    assert p.registry.champion() is None
    assert p.registry.info(version).metadata["status"] == "challenger"
    assert sent == []


def test_a_loser_goes_to_the_shadow_when_configured(tmp_path, sent):
    p = make_publisher(tmp_path, trainer_shadow_challengers=True)
    p.publish(result(promote=False), "schedule", effect=None)
    ((key, payload),) = on(sent, p.settings.topics.model_updates)
    assert key == b"shadow" and payload["role"] == "shadow" and payload["action"] == "shadow"
    assert p.registry.champion() is None


def test_synthetic_frauds_are_published_up_to_the_cap(tmp_path, sent):
    p = make_publisher(tmp_path, trainer_publish_synthetic=True, trainer_synthetic_publish_cap=3)
    rows = np.arange(5 * len(FEATURE_NAMES), dtype=np.float64).reshape(5, -1)
    p.publish(result(promote=True, synthetic=rows), "request", effect=None)
    (version,) = p.registry.versions()
    published = on(sent, p.settings.topics.synthetic_frauds)
    assert len(published) == 3 and all(key == version.encode() for key, _ in published)
    assert published[0][1]["features"] == dict(zip(FEATURE_NAMES, rows[0]))
    assert published[0][1]["feature_schema"] == SCHEMA
    assert p.registry.info(version).metadata["synthetic_published"]["n"] == 3
    get = p.metrics.registry.get_sample_value
    assert get("fraudstream_trainer_synthetic_published_total") == 3
    assert get("fraudstream_trainer_synthetic_rows_total") == 5
    assert p.last_synthetic_publication() == (version, {"n": 3, "at_event_ts": WINDOW_LAST_TS})


def test_the_ledger_state_is_the_newest_readable_versions(tmp_path, sent):
    p = make_publisher(tmp_path)
    assert p.ledger_state() == {"entries": [], "off_cycles": 0}
    state = {"entries": [{"estimate": 0.01, "low": 0.0, "high": 0.02, "se": 0.005}],
             "off_cycles": 2}
    p.publish(result(promote=False), "schedule", effect=None, ledger={"state": state})
    p.publish(result(promote=False), "schedule", effect=None, ledger=None)
    newest = p.registry.versions()[-1]
    (p.registry.versions_dir / newest / "metadata.json").write_text("{garbage")
    assert p.ledger_state() == state  # the unreadable newest one is stepped over


# -- reconciling model-updates with the registry at start ------------------------------------------


@pytest.fixture
def champion(tmp_path, sent) -> Publisher:
    p = make_publisher(tmp_path)
    p.publish(result(promote=True), "request", effect=None)
    sent.clear()
    return p


def test_a_topic_that_names_the_champion_is_left_alone(champion, sent, monkeypatch):
    payload = champion.registry.announcement(champion.registry.champion())
    monkeypatch.setattr(publisher_module, "latest_announcements",
                        lambda settings, on_refused=None: ({"champion": payload}, 1))
    champion.reconcile()
    assert sent == []


def test_a_topic_that_does_not_name_the_champion_gets_it_reannounced(champion, monkeypatch):
    stale = {**champion.registry.announcement(champion.registry.champion()), "sha256": "0" * 64}
    monkeypatch.setattr(publisher_module, "latest_announcements",
                        lambda settings, on_refused=None: ({"champion": stale}, 1))
    announced = []
    monkeypatch.setattr(publisher_module, "announce",
                        lambda settings, payload, kafka=None: announced.append(payload))
    champion.reconcile()
    (payload,) = announced
    assert payload["role"] == "champion" and payload["action"] == "reannounce"
    assert payload["version"] == champion.registry.champion()
    assert check_announcement(b"champion", json.dumps(payload).encode()).ok


def test_an_unreadable_topic_does_not_stop_the_trainer(champion, sent, monkeypatch, caplog):
    def unreadable(settings, on_refused=None):
        raise TimeoutError("reading model-updates took over 30 s")

    monkeypatch.setattr(publisher_module, "latest_announcements", unreadable)
    champion.reconcile()
    assert sent == [] and "could not read" in caplog.text


def test_refused_model_updates_records_are_counted(champion, sent, monkeypatch):
    payload = champion.registry.announcement(champion.registry.champion())

    def garbage_around_the_champion(settings, on_refused=None):
        on_refused(check_announcement(b"champion", b"{not json", 4))
        on_refused(check_announcement(b"boss", b"{}", 6))
        return {"champion": payload}, 7

    monkeypatch.setattr(publisher_module, "latest_announcements", garbage_around_the_champion)
    champion.reconcile()
    assert sent == []
    get = champion.metrics.registry.get_sample_value
    assert get("fraudstream_trainer_control_refused_total",
               {"topic": "model-updates", "reason": "malformed"}) == 1
    assert get("fraudstream_trainer_control_refused_total",
               {"topic": "model-updates", "reason": "unknown_role"}) == 1
