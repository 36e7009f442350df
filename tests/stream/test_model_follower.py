"""The worker's model follower with in-memory fakes: no broker, no registry on disk, no model.

A fake registry says which versions load and which one is the champion; a fake scorer and
learner record what the follower swaps in and teaches; a fake consumer hands ``_follow`` its
records. The broker scenarios (test_model_swap.py, test_control_plane.py) run the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from kafka_helpers import produce_raw
from prometheus_client import CollectorRegistry

from fraudstream.models.features import FEATURE_NAMES, schema_hash
from fraudstream.models.registry import ArtifactError
from fraudstream.stream import model_follower
from fraudstream.stream.announce import Announcement
from fraudstream.stream.config import load_settings
from fraudstream.stream.metrics import WorkerMetrics
from fraudstream.stream.model_follower import ModelFollower
from fraudstream.stream.topics import create_topics

SCHEMA = schema_hash(FEATURE_NAMES)
V1, V2, V3 = "v0001-20260101T000000Z", "v0002-20260102T000000Z", "v0003-20260103T000000Z"


class FakeRegistry:
    """Versions that load (as a stand-in model each), those that do not, and the champion."""

    def __init__(self, loadable=(V1, V2), champion=V1) -> None:
        self.loadable = set(loadable)
        self.champion_version = champion
        self.loaded: list[str] = []
        self.fail_with: Exception | None = None

    def load_batch_model(self, version, schema, sha256=None):
        self.loaded.append(version)
        if self.fail_with is not None:
            raise self.fail_with
        if version not in self.loadable:
            raise ArtifactError(f"{version}: model.ubj sha256 does not match")
        return SimpleNamespace(version=version)

    def champion(self):
        return self.champion_version


class FakeScorer:
    def __init__(self) -> None:
        self.champion = None
        self.shadow = None
        self.online_version = "online-0"

    @property
    def model_version(self) -> str:
        return self.champion.version if self.champion is not None else self.online_version

    def swap_champion(self, model) -> None:
        self.champion = model

    def swap_shadow(self, model) -> None:
        self.shadow = model


class FakeLearner:
    def __init__(self, accepts: bool = True) -> None:
        self.accepts = accepts
        self.learned: list[tuple[dict, bool, float]] = []
        self.positions: dict[str, int] = {}

    def learn_one(self, x, y, weight=1.0):
        if not self.accepts:
            return False
        self.learned.append((x, y, weight))
        return None


class Follower:
    """A follower on fakes, and what its metrics counted."""

    def __init__(self, tmp_path, registry=None, learner=None, **overrides) -> None:
        self.settings = load_settings(model_registry=tmp_path / "registry", metrics_port=0,
                                      **overrides)
        self.prom = CollectorRegistry()
        self.scorer, self.learner = FakeScorer(), learner or FakeLearner()
        self.swapped: list[str] = []
        self.follower = ModelFollower(self.settings, self.scorer, self.learner,
                                      WorkerMetrics(self.prom), SCHEMA, on_swap=self.swapped.append)
        self.registry = self.follower.registry = registry or FakeRegistry()

    def announce(self, version, role="champion", key=None, offset=-1, **changes) -> None:
        asyncio.run(self.follower.on_announcement(
            (key or role).encode(), json.dumps(record(version, role, **changes)).encode(), offset))

    def swaps(self, outcome) -> float:
        return self.prom.get_sample_value("fraudstream_model_swaps_total", {"outcome": outcome})

    def refusals(self, role, reason) -> float:
        return self.prom.get_sample_value("fraudstream_model_refusals_total",
                                          {"role": role, "reason": reason})

    def synthetic_refused(self, reason) -> float:
        return self.prom.get_sample_value("fraudstream_synthetic_refused_total", {"reason": reason})


def record(version, role="champion", **changes) -> dict:
    """A model-updates record as the trainer announces ``version``."""
    return {"version": version, "artifact": f"versions/{version}/model.ubj", "sha256": "ab" * 32,
            "feature_schema": SCHEMA, "metrics": {}, "role": role, "at": 1.0,
            "action": "promote" if role == "champion" else "shadow", "reason": "test", **changes}


def synthetic(**changes) -> bytes:
    value = {"synthetic": True, "version": V1, "feature_schema": SCHEMA, "at": 1.0,
             "features": {n: 0.5 for n in FEATURE_NAMES}, **changes}
    return json.dumps(value).encode()


@pytest.fixture
def w(tmp_path) -> Follower:
    return Follower(tmp_path)


# -- model-updates ----------------------------------------------------------------------------


def test_the_registrys_champion_is_swapped_in_and_counted(w):
    w.announce(V1)
    assert w.scorer.champion.version == V1
    assert w.swaps("loaded") == 1 and w.swapped == ["champion"]
    info = w.prom.get_sample_value("fraudstream_model_info",
                                   {"decision_model": V1, "online": "online-0", "shadow": "none"})
    assert info == 1


def test_the_same_champion_announced_again_is_unchanged_and_not_reloaded(w):
    w.announce(V1)
    w.announce(V1)
    assert w.registry.loaded == [V1]
    assert w.swaps("unchanged") == 1 and w.swaps("loaded") == 1


def test_a_loadable_version_that_is_not_the_registrys_champion_is_refused(w, caplog):
    w.announce(V1)
    caplog.set_level(logging.ERROR, "fraudstream.worker.models")
    w.announce(V2)
    assert w.scorer.champion.version == V1
    assert w.refusals("champion", "not_champion") == 1 and w.swaps("refused") == 1
    assert f"keeping {V1}" in caplog.text


def test_a_version_that_fails_verification_is_refused(w):
    w.registry.champion_version = V3
    w.announce(V3)
    assert w.scorer.champion is None
    assert w.refusals("champion", "artifact") == 1


def test_a_model_of_another_feature_schema_is_refused_without_loading_it(w):
    w.announce(V1, feature_schema="f" * 64)
    assert w.registry.loaded == [] and w.scorer.champion is None
    assert w.refusals("champion", "feature_schema") == 1


def test_a_loader_that_raises_is_counted_and_the_follower_goes_on(w):
    w.registry.fail_with = RuntimeError("disk on fire")
    w.announce(V1)
    assert w.refusals("champion", "error") == 1
    w.registry.fail_with = None
    w.announce(V1)
    assert w.scorer.champion.version == V1


def test_a_record_under_an_unknown_key_is_refused_as_no_role(w):
    w.announce(V1, key="admin")
    assert w.scorer.champion is None and w.refusals("none", "unknown_role") == 1


def test_the_shadow_is_deployed_and_cleared(w):
    w.announce(V2, role="shadow")
    assert w.scorer.shadow.version == V2 and w.scorer.champion is None
    w.announce(None, role="shadow", artifact=None, sha256=None, action="clear")
    assert w.scorer.shadow is None
    assert w.swaps("loaded") == 1 and w.swaps("cleared") == 1
    assert w.swapped == ["shadow", "shadow"]


# -- start-up -----------------------------------------------------------------------------------


def ann(version, role="champion", offset=0) -> Announcement:
    return Announcement(role, record(version, role), offset=offset)


def test_at_start_up_the_newest_announcement_that_loads_wins(w):
    # newest first, as announcement_history gives them: V3 does not load, V2 is not champion
    w.follower.install_initial({"champion": [ann(V3, offset=2), ann(V2, offset=1), ann(V1)],
                                "shadow": [ann(V2, "shadow", 3)]})
    assert w.scorer.champion.version == V1 and w.scorer.shadow.version == V2
    assert w.refusals("champion", "artifact") == 1 and w.refusals("champion", "not_champion") == 1


def test_load_initial_reads_the_history_and_resumes_after_it(w, monkeypatch):
    def history(settings, on_refused=None):
        on_refused(Announcement(None, None, "unknown_role", "the key names no role", 0))
        return {"champion": [ann(V1, offset=1)], "shadow": []}, 2

    monkeypatch.setattr(model_follower, "announcement_history", history)
    w.follower.load_initial()
    assert w.scorer.champion.version == V1 and w.follower.updates_offset == 2
    assert w.refusals("none", "unknown_role") == 1


def test_load_initial_without_a_broker_starts_on_the_online_learner(w, monkeypatch, caplog):
    def history(settings, on_refused=None):
        raise TimeoutError("reading model-updates took over 30 s")

    monkeypatch.setattr(model_follower, "announcement_history", history)
    w.follower.load_initial()
    assert w.scorer.champion is None and w.follower.updates_offset == 0
    assert "starting without a batch model" in caplog.text


# -- synthetic frauds -----------------------------------------------------------------------


def test_a_synthetic_fraud_on_this_schema_is_learned_with_its_weight(tmp_path):
    w = Follower(tmp_path, online_synthetic_weight=0.25)
    assert w.follower.on_synthetic(synthetic()) is True
    ((x, y, weight),) = w.learner.learned
    assert set(x) == set(FEATURE_NAMES) and y is True and weight == 0.25
    assert w.prom.get_sample_value("fraudstream_online_synthetic_learned_total") == 1


@pytest.mark.parametrize("value, reason", [
    (synthetic(feature_schema="f" * 64), "feature_schema"),
    (synthetic(features={n: 0.5 for n in FEATURE_NAMES[1:]}), "missing_features"),
    (synthetic(features={**{n: 0.5 for n in FEATURE_NAMES}, "x_extra": 1.0}), "unknown_features"),
    (synthetic(features={**{n: 0.5 for n in FEATURE_NAMES}, FEATURE_NAMES[0]: 1e12}),
     "out_of_bounds"),
    (b"\xff not json", "malformed"),
    (None, "malformed"),
])
def test_an_odd_synthetic_fraud_is_refused_and_not_learned(w, value, reason):
    assert w.follower.on_synthetic(value) is False
    assert w.learner.learned == [] and w.synthetic_refused(reason) == 1


def test_a_synthetic_fraud_the_learner_refuses_is_counted(tmp_path):
    w = Follower(tmp_path, learner=FakeLearner(accepts=False))
    assert w.follower.on_synthetic(synthetic()) is False
    assert w.synthetic_refused("learner_refused") == 1


def test_synthetic_frauds_are_ignored_when_their_weight_is_zero(tmp_path):
    w = Follower(tmp_path, online_synthetic_weight=0.0)
    assert w.follower.on_synthetic(synthetic()) is False
    assert w.learner.learned == [] and w.synthetic_refused("disabled") == 1


# -- following both topics ----------------------------------------------------------------------


class FakeConsumer:
    """Hands out the batches it was given, then cancels the follower (as a shutdown would)."""

    def __init__(self, batches, log_start=None) -> None:
        self.batches = list(batches)
        self.assigned, self.seeks, self.stopped = [], {}, False
        self.log_start = log_start or {}  # partition -> first offset retention kept

    async def beginning_offsets(self, partitions):
        return {tp: self.log_start.get(tp, 0) for tp in partitions}

    async def start(self) -> None:
        pass

    def assign(self, partitions) -> None:
        self.assigned = list(partitions)

    def seek(self, tp, offset) -> None:
        self.seeks[tp] = offset

    async def seek_to_end(self, tp) -> None:
        self.seeks[tp] = "end"

    async def position(self, tp) -> int:
        return 3 if self.seeks.get(tp) == "end" else self.seeks[tp]

    async def getmany(self, timeout_ms=0, max_records=None):
        if not self.batches:
            raise asyncio.CancelledError
        return self.batches.pop(0)

    async def stop(self) -> None:
        self.stopped = True


def test_follow_resumes_after_the_last_announcement_and_routes_each_topic(w, monkeypatch):
    s = w.settings
    updates = TopicPartition(s.topics.model_updates, 0)
    frauds = TopicPartition(s.topics.synthetic_frauds, 0)
    rec = lambda key, value, offset: SimpleNamespace(key=key, value=value, offset=offset)  # noqa: E731
    consumer = FakeConsumer([
        {updates: [rec(b"champion", json.dumps(record(V1)).encode(), 7),
                   rec(b"champion", b"garbage", 8)],
         frauds: [rec(b"v", synthetic(), 0)]},
        {updates: [rec(b"shadow", json.dumps(record(V2, "shadow")).encode(), 9)]},
    ])
    monkeypatch.setattr(model_follower, "AIOKafkaConsumer", lambda **kwargs: consumer)
    w.follower.updates_offset = 7
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(w.follower._follow())
    assert consumer.assigned == [updates, frauds] and consumer.stopped
    assert consumer.seeks == {updates: 7, frauds: "end"}
    assert w.scorer.champion.version == V1 and w.scorer.shadow.version == V2
    assert w.refusals("champion", "malformed") == 1
    assert len(w.learner.learned) == 1
    # a reconnect resumes after the last record handled, garbage included
    assert w.follower.updates_offset == 10 and w.follower.synthetic_offset == 1


def test_a_reconnect_resumes_synthetic_frauds_after_the_last_one_handled(w, monkeypatch):
    """The first connection starts at the end of synthetic-frauds; later ones where it left."""
    s = w.settings
    frauds = TopicPartition(s.topics.synthetic_frauds, 0)
    first = FakeConsumer([])
    monkeypatch.setattr(model_follower, "AIOKafkaConsumer", lambda **kwargs: first)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(w.follower._follow())
    assert first.seeks[frauds] == "end" and w.follower.synthetic_offset == 3
    again = FakeConsumer([])
    monkeypatch.setattr(model_follower, "AIOKafkaConsumer", lambda **kwargs: again)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(w.follower._follow())
    assert again.seeks[frauds] == 3


def test_a_position_retention_deleted_resumes_at_the_earliest_record_kept(w, monkeypatch, caplog):
    """Saved positions below the log start (records deleted while the worker was away) resume
    at the earliest record still there, not at the end (which would skip all of them)."""
    s = w.settings
    updates = TopicPartition(s.topics.model_updates, 0)
    frauds = TopicPartition(s.topics.synthetic_frauds, 0)
    w.learner.positions[frauds.topic] = 2
    w.follower.updates_offset = 1
    consumer = FakeConsumer([], log_start={frauds: 5, updates: 4})
    monkeypatch.setattr(model_follower, "AIOKafkaConsumer", lambda **kwargs: consumer)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(w.follower._follow())
    assert consumer.seeks == {updates: 4, frauds: 5}
    assert "offsets 2-4 were deleted by retention" in caplog.text
    # Positions at or above the log start are kept as they are.
    w.learner.positions[frauds.topic] = 7
    consumer = FakeConsumer([], log_start={frauds: 5})
    monkeypatch.setattr(model_follower, "AIOKafkaConsumer", lambda **kwargs: consumer)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(w.follower._follow())
    assert consumer.seeks[frauds] == 7


def test_synthetic_frauds_published_while_cut_off_or_down_are_learned_once(settings, tmp_path):
    """Against the real broker: the follower's connection ends (as a broker outage ends it),
    two synthetic frauds are published meanwhile, and the next connection learns exactly
    those, not the one learned before the cut and not none."""
    create_topics(settings)
    learner = FakeLearner()
    follower = ModelFollower(settings, FakeScorer(), learner,
                             WorkerMetrics(CollectorRegistry()), SCHEMA)
    follower.registry = FakeRegistry()
    topic = settings.topics.synthetic_frauds

    async def follow_until(n_learned: int) -> None:
        task = asyncio.create_task(follower._follow())
        try:
            deadline = asyncio.get_running_loop().time() + 60
            while len(learner.learned) < n_learned:
                assert asyncio.get_running_loop().time() < deadline, learner.learned
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # and nothing more arrives
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def connected_then(produce) -> None:
        task = asyncio.create_task(follower._follow())
        while follower.synthetic_offset is None:  # positioned at the end
            await asyncio.sleep(0.05)
        produce()
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def fraud(tag: float) -> bytes:
        return synthetic(features={n: tag for n in FEATURE_NAMES})

    produce_raw(settings, topic, [(b"v", fraud(0.1))])  # before the first start: not learned
    asyncio.run(connected_then(lambda: produce_raw(settings, topic, [(b"v", fraud(0.2))])))
    asyncio.run(follow_until(1))
    produce_raw(settings, topic, [(b"v", fraud(0.3)), (b"v", fraud(0.4))])  # while cut off
    asyncio.run(follow_until(3))
    # A restarted worker: a new follower on the learner its checkpoint restores (positions
    # included, tests/models/test_online.py) resumes where that learner stood.
    produce_raw(settings, topic, [(b"v", fraud(0.5))])  # while the worker is down
    follower = ModelFollower(settings, FakeScorer(), learner, WorkerMetrics(CollectorRegistry()),
                             SCHEMA)
    follower.registry = FakeRegistry()
    asyncio.run(follow_until(4))
    tags = [x[FEATURE_NAMES[0]] for x, _, _ in learner.learned]
    assert tags == [0.2, 0.3, 0.4, 0.5]
