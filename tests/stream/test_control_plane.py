"""The control plane is as hostile as the data plane: model-updates, synthetic-frauds,
fraudstream-control and training-examples.

Unit and property tests run the real handlers (ModelFollower, Trainer) on a real Scorer,
OnlineLearner, Registry (in a tmp dir) and metrics (a fresh CollectorRegistry), without a
broker: no record, however odd, raises out of a handler, every record is accounted for once,
and the champion moves only to a verified artifact that the registry names as its champion.
The last test does the same against the real broker with a worker and a trainer running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from fraudstream.models.batch import XGBoostModel, XGBParams
from fraudstream.models.features import FEATURE_NAMES, schema_hash
from fraudstream.models.online import OnlineLearner
from fraudstream.models.registry import MODEL_FILE, Registry
from fraudstream.models.scorer import Scorer
from fraudstream.stream.announce import (
    RefusalLog, check_announcement, pick_announcements, printable,
)
from fraudstream.stream.config import load_settings
from fraudstream.stream.metrics import (
    ANNOUNCEMENT_REFUSALS, SWAP_OUTCOMES, SYNTHETIC_REFUSALS, WorkerMetrics,
)
from fraudstream.stream.model_follower import ModelFollower
from fraudstream.stream.trainer import Trainer

SCHEMA = schema_hash(FEATURE_NAMES)
DAY = 86_400.0
PROPERTY = hsettings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])


# -- the world: a registry with a champion, a follower, a trainer -----------------------------


def publish_model(registry: Registry, seed: int, names=FEATURE_NAMES) -> str:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, len(names)))
    y = (X[:, 0] + rng.normal(size=200) > 1).astype(int)
    model = XGBoostModel.train(X, y, list(names), XGBParams(n_estimators=5, seed=seed))
    return registry.publish({MODEL_FILE: model.to_bytes()}, {
        "status": "challenger", "feature_names": list(names),
        "feature_schema": schema_hash(names)}).version


class World:
    """v1 is the registry's champion and loaded; v2 is verified but not the champion; v3's
    artifact is corrupted; v4 was trained on another feature schema."""

    def __init__(self, root: Path, **overrides) -> None:
        self.settings = load_settings(model_registry=root, metrics_port=0, **overrides)
        self.registry = Registry(root)
        self.v1, self.v2, self.v3 = (publish_model(self.registry, s) for s in (1, 2, 3))
        self.v4 = publish_model(self.registry, 4, FEATURE_NAMES + ["x_extra"])
        self.registry.set_champion(self.v1, "test")
        self.payloads = {v: self.registry.announcement(v) for v in (self.v1, self.v2, self.v3, self.v4)}
        path = self.registry.versions_dir / self.v3 / MODEL_FILE
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        self.learner = OnlineLearner(seed=0)
        self.scorer = Scorer(self.learner)
        self.prom = CollectorRegistry()
        self.metrics = WorkerMetrics(self.prom)
        self.follower = ModelFollower(self.settings, self.scorer, self.learner, self.metrics, SCHEMA)
        self.announce(b"champion", self.record(self.v1, action="promote"))
        self.champion = self.scorer.champion
        assert self.champion is not None and self.champion.version == self.v1

    def record(self, of, role="champion", **changes) -> dict:
        """The announcement of version ``of``, with ``changes``."""
        return {**self.payloads[of], "role": role, **changes}

    def announce(self, key, value, offset=-1) -> None:
        raw = value if isinstance(value, (bytes, type(None))) else json.dumps(value).encode()
        asyncio.run(self.follower.on_announcement(key, raw, offset))

    def swaps(self, outcome=None) -> float:
        outcomes = [outcome] if outcome else SWAP_OUTCOMES
        return sum(self.prom.get_sample_value("fraudstream_model_swaps_total",
                                              {"outcome": o}) for o in outcomes)

    def refusals(self, reason=None, role=None) -> float:
        return sum(self.prom.get_sample_value("fraudstream_model_refusals_total",
                                              {"role": r, "reason": x})
                   for r in ([role] if role else ["champion", "shadow", "none"])
                   for x in ([reason] if reason else ANNOUNCEMENT_REFUSALS))

    def synthetic(self, raw) -> bool:
        raw = raw if isinstance(raw, (bytes, type(None))) else json.dumps(raw).encode()
        return self.follower.on_synthetic(raw)

    def synthetic_refused(self, reason=None) -> float:
        return sum(self.prom.get_sample_value("fraudstream_synthetic_refused_total",
                                              {"reason": r})
                   for r in ([reason] if reason else SYNTHETIC_REFUSALS))

    def learned(self) -> float:
        return self.prom.get_sample_value("fraudstream_online_synthetic_learned_total")


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path / "registry")


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory) -> World:
    """One world for the property tests (building one trains four small models)."""
    return World(tmp_path_factory.mktemp("control") / "registry")


def synthetic_record(**features) -> dict:
    values = {n: 0.5 for n in FEATURE_NAMES}
    values.update(features)
    return {"synthetic": True, "version": "v0001-20260101T000000Z", "feature_schema": SCHEMA,
            "at": 1.0, "features": {k: v for k, v in values.items() if v is not None}}


# -- model-updates: one record at a time --------------------------------------------------------


def test_a_null_version_under_champion_is_refused_and_the_champion_stays(world, caplog):
    caplog.set_level(logging.ERROR, "fraudstream.worker.models")
    for action in ("clear", "rollback", None):
        world.announce(b"champion", {"version": None, "artifact": None, "sha256": None,
                                     "metrics": {}, **({"action": action} if action else {})})
    assert world.scorer.champion is world.champion
    assert world.refusals("champion_clear", "champion") == 3
    assert world.swaps("refused") == 3 and world.swaps("cleared") == 0
    assert "cannot clear the champion" in caplog.text


def test_the_shadow_is_cleared_only_by_an_explicit_clear(world):
    world.announce(b"shadow", world.record(world.v2, role="shadow", action="shadow"))
    assert world.scorer.shadow.version == world.v2
    clear = {"version": None, "artifact": None, "sha256": None, "metrics": {}, "role": "shadow"}
    world.announce(b"shadow", clear)                                  # no action: refused
    world.announce(b"shadow", {**clear, "action": "promote"})         # the wrong action
    world.announce(b"shadow", {**clear, "action": "clear", "sha256": "0" * 64})  # names an artifact
    assert world.scorer.shadow.version == world.v2
    assert world.refusals("malformed", "shadow") == 3
    world.announce(b"shadow", {**clear, "action": "clear"})           # fraudstream models shadow --clear
    assert world.scorer.shadow is None and world.swaps("cleared") == 1
    world.announce(b"shadow", {**clear, "action": "clear"})           # nothing left to clear
    assert world.swaps("unchanged") == 1
    assert world.scorer.champion is world.champion


def test_a_verified_version_that_is_not_the_registrys_champion_is_refused(world):
    world.announce(b"champion", world.record(world.v2, action="promote"))
    world.announce(b"champion", world.record(world.v2, action="rollback"))
    assert world.scorer.champion is world.champion
    assert world.refusals("not_champion", "champion") == 2


def test_a_promotion_and_a_rollback_through_the_registry_move_the_champion(world):
    world.registry.set_champion(world.v2, "promoted", SCHEMA)
    world.announce(b"champion", world.record(world.v2, action="promote"))
    assert world.scorer.champion.version == world.v2
    state = world.registry.rollback("test rollback")
    assert state["version"] == world.v1
    world.announce(b"champion", world.registry.announcement(world.v1) | {"action": "rollback"})
    assert world.scorer.champion.version == world.v1
    assert world.swaps("loaded") == 3 and world.swaps("refused") == 0


@pytest.mark.parametrize("case, reason", [
    ("corrupted", "artifact"), ("wrong_sha", "artifact"), ("missing", "artifact"),
    ("traversal", "artifact"), ("no_sha", "no_checksum"), ("announced_schema", "feature_schema"),
    ("trained_schema", "artifact"), ("other_schema", "feature_schema"),
    ("role_mismatch", "role_mismatch"),
])
def test_champion_announcements_that_fail_a_check_are_refused(world, case, reason, caplog):
    caplog.set_level(logging.ERROR, "fraudstream.worker.models")
    w = world
    record = {
        "corrupted": w.record(w.v3),
        "wrong_sha": w.record(w.v1, version=w.v2),
        "missing": w.record(w.v1, version="v9999-20260101T000000Z"),
        "traversal": w.record(w.v1, version="../../../etc/passwd"),
        "no_sha": w.record(w.v2, sha256=None),
        "announced_schema": w.record(w.v2, feature_schema="f" * 64),
        "trained_schema": w.record(w.v4, feature_schema=SCHEMA),  # the record lies
        "other_schema": w.record(w.v4),
        "role_mismatch": w.record(w.v2, role="shadow"),
    }[case]
    if record["version"] in (w.v3, w.v4):
        # even named by champion.json (forged: set_champion verifies), the artifact is refused
        w.registry._write_champion(record["version"], [], "test", None)  # noqa: SLF001
    w.announce(b"champion", record)
    assert w.scorer.champion is w.champion
    assert w.refusals(reason, "champion") == 1 and w.swaps("refused") == 1
    if case == "corrupted":
        assert "refused champion" in caplog.text and "sha256" in caplog.text


@pytest.mark.parametrize("key, value, reason", [
    (None, None, "unknown_role"),
    (b"", b"{}", "unknown_role"),
    (b"CHAMPION", None, "unknown_role"),
    (b"champion\xff", None, "unknown_role"),
    ("champion\ud800".encode("utf-8", "surrogatepass"), None, "unknown_role"),
    (b"champion", None, "malformed"),
    (b"champion", b"\xff\xfe\x00", "malformed"),
    (b"champion", b"[]", "malformed"),
    (b"champion", b'{"version": "v1", "metrics": {}}', "malformed"),
    (b"champion", b"{" * 5000, "malformed"),
    (b"champion", b'{"version":"\\ud800","artifact":null,"sha256":null,"metrics":{}}', "malformed"),
    (b"shadow", b'{"version":null,"artifact":null,"sha256":null,"metrics":' + b"[" * 1000
     + b"]" * 1000 + b',"action":"clear"}', "malformed"),
    (b"champion", b'{"version":"v0001-20260101T000000Z","artifact":null,"sha256":null,'
                  b'"metrics":{"ap":1' + b"0" * 400 + b'},"at":1e308}', "no_checksum"),
])
def test_undecodable_and_unknown_records_are_refused(world, key, value, reason):
    world.announce(key, value)
    assert world.scorer.champion is world.champion
    assert world.refusals(reason) == 1 and world.swaps("refused") == 1


def test_the_current_champion_announced_again_is_unchanged(world):
    world.announce(b"champion", world.record(world.v1, action="reannounce"))
    assert world.scorer.champion is world.champion and world.swaps("unchanged") == 1


# -- model-updates at start-up: the newest valid announcement per role wins ---------------------


def test_at_start_up_garbage_after_the_last_announcement_does_not_unseat_the_champion(world):
    w = world
    garbage = [
        (b"champion", w.record(w.v1, action="promote")),
        (b"shadow", w.record(w.v2, role="shadow", action="shadow")),
        (b"champion", {"version": None, "artifact": None, "sha256": None, "metrics": {}}),
        (b"champion", w.record(w.v3)),                   # corrupted artifact
        (b"champion", w.record(w.v2)),                   # verified, not the registry's champion
        (b"champion", b"\x00garbage"),
        (b"nobody", w.record(w.v2)),
        (b"shadow", w.record(w.v3, role="shadow")),      # corrupted: the v2 shadow before it wins
        (b"shadow", b"[" * 1000 + b"]" * 1000),
    ]
    records = [(k, v if isinstance(v, bytes) else json.dumps(v).encode(), i)
               for i, (k, v) in enumerate(garbage)]
    fresh = ModelFollower(w.settings, Scorer(w.learner), w.learner, w.metrics, SCHEMA)
    history = pick_announcements(records, on_refused=fresh._refuse_record)
    assert [a.offset for a in history["champion"]] == [4, 3, 0]
    fresh.install_initial(history)
    assert fresh.scorer.champion.version == w.v1 and fresh.scorer.shadow.version == w.v2
    # refused: the null champion, the bytes, the unknown key, the deep shadow (reading);
    # v2 and v3 as champion, v3 as shadow (loading, newest first until one loads)
    assert w.refusals("champion_clear") == 1 and w.refusals("unknown_role") == 1
    assert w.refusals("malformed") == 2
    assert w.refusals("not_champion") == 1 and w.refusals("artifact", "champion") == 1
    assert w.refusals("artifact", "shadow") == 1


def test_at_start_up_only_garbage_leaves_the_online_learner(world):
    records = [(b"champion", b"nonsense", 0),
               (b"champion", json.dumps({"version": None, "artifact": None, "sha256": None,
                                         "metrics": {}}).encode(), 1)]
    fresh = ModelFollower(world.settings, Scorer(world.learner), world.learner, world.metrics, SCHEMA)
    fresh.install_initial(pick_announcements(records, on_refused=fresh._refuse_record))
    assert fresh.scorer.champion is None and fresh.scorer.shadow is None


def test_pick_announcements_keeps_a_bounded_history():
    record = json.dumps({"version": "v0001-20260101T000000Z", "artifact": "a", "sha256": "0" * 64,
                         "metrics": {}}).encode()
    history = pick_announcements(((b"champion", record, i) for i in range(10_000)), keep=5)
    assert [a.offset for a in history["champion"]] == [9999, 9998, 9997, 9996, 9995]
    assert history["shadow"] == []


# -- synthetic frauds ----------------------------------------------------------------------------


def test_a_valid_synthetic_fraud_is_learned(world):
    before = world.learner.n_learned
    assert world.synthetic(synthetic_record()) is True
    assert world.learned() == 1 and world.learner.n_learned == before + 1


@pytest.mark.parametrize("record, reason", [
    (synthetic_record(amount=None), "missing_features"),
    (synthetic_record(x_unknown=1.0), "unknown_features"),
    (synthetic_record(amount=1e308), "out_of_bounds"),
    (synthetic_record(amount=-2e9), "out_of_bounds"),
    ({**synthetic_record(), "feature_schema": "0" * 64}, "feature_schema"),
    ({**synthetic_record(), "features": {}}, "missing_features"),
    ({**synthetic_record(), "synthetic": False}, "malformed"),
    ([1, 2, 3], "malformed"),
    (b"\xff", "malformed"),
    (None, "malformed"),
    (b'{"synthetic":true,"version":"v","features":{"amount":1' + b"0" * 400 + b"}}", "malformed"),
    (b'{"synthetic":true,"version":"v","features":{"amount":NaN}}', "malformed"),
])
def test_odd_synthetic_frauds_are_refused_and_not_learned(world, record, reason):
    before = world.learner.n_learned
    assert world.synthetic(record) is False
    assert world.learner.n_learned == before and world.learned() == 0
    assert world.synthetic_refused() == 1, {r: world.synthetic_refused(r) for r in SYNTHETIC_REFUSALS}
    if reason != "malformed":
        assert world.synthetic_refused(reason) == 1
    else:  # the contract may class a huge integer as out of bounds
        assert world.synthetic_refused("malformed") + world.synthetic_refused("out_of_bounds") == 1


def test_the_feature_bound_is_the_setting(tmp_path):
    w = World(tmp_path / "registry", max_feature_abs=10.0)
    assert w.synthetic(synthetic_record(amount=10.0)) is True
    assert w.synthetic(synthetic_record(amount=10.5)) is False
    assert w.synthetic_refused("out_of_bounds") == 1


def test_synthetic_frauds_are_ignored_when_their_weight_is_zero(tmp_path):
    w = World(tmp_path / "registry", online_synthetic_weight=0)
    assert w.synthetic(synthetic_record()) is False
    assert w.synthetic_refused("disabled") == 1 and w.learned() == 0


def test_a_flood_of_refusals_is_logged_once_per_interval(world, caplog):
    caplog.set_level(logging.WARNING, "fraudstream.worker.models")
    for _ in range(2000):
        world.synthetic(b"garbage")
        world.synthetic(synthetic_record(amount=1e12))
    assert world.synthetic_refused() == 4000
    assert len(caplog.records) <= 2  # one per reason within the interval


def test_the_refusal_log_says_how_many_it_held_back(caplog):
    now = [0.0]
    limiter = RefusalLog(logging.getLogger("test.refusals"), every_s=10, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, "test.refusals")
    assert limiter.refused("t", "r", "first")
    assert not limiter.refused("t", "r", "second") and not limiter.refused("t", "r", "third")
    assert limiter.refused("t", "other", "another reason is not held back")
    now[0] = 10.0
    assert limiter.refused("t", "r", "line\nbreak \ud800")
    assert len(caplog.records) == 3
    assert "2 more refused" in caplog.records[-1].getMessage()
    assert "\n" not in caplog.records[-1].getMessage()  # a record cannot forge log lines


def test_printable_escapes_what_a_record_could_hold():
    assert printable("a\nb\ud800") == "a\\nb\\ud800"
    assert printable("x" * 10, 4) == "xxxx..."


# -- property tests: no input raises, the champion stays -----------------------------------------

SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udbff", "\ud800\udc00"])
TEXT = st.text(max_size=12) | SURROGATES
SCALARS = (st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([1e308, -1e308, 5e-324, 10 ** 400, -(10 ** 30)]) | TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
DEEP = st.sampled_from([
    "[" * 1000 + "]" * 1000,
    '{"a":' * 1000 + "1" + "}" * 1000,
    '{"version":null,"artifact":null,"sha256":null,"metrics":' + '{"m":' * 1000 + "{}" + "}" * 1000 + "}",
])


def dumps(value) -> bytes:
    # ensure_ascii: a lone surrogate goes on the wire as "\ud800", as a hostile producer sends it
    return json.dumps(value, ensure_ascii=True, allow_nan=False).encode()


def wire(structured):
    """Raw bytes, any JSON, deep JSON, or a structured record of the kind."""
    return st.one_of(st.binary(max_size=64), JSON.map(dumps), DEEP.map(str.encode),
                     structured.map(dumps), st.none())


ACTIONS = ["promote", "rollback", "manual", "shadow", "clear", "reannounce"]


@st.composite
def announcement_records(draw, world: World):
    """A real announcement (or shadow clear), then up to three fields dropped or replaced by
    another version's, a checksum of another artifact, another schema, or any JSON."""
    clear = {"version": None, "artifact": None, "sha256": None, "metrics": {}}
    record = dict(draw(st.sampled_from([*world.payloads.values(), clear])))
    record["role"] = draw(st.sampled_from(["champion", "shadow"]))
    record["action"] = draw(st.sampled_from(ACTIONS))
    odd = {
        "version": st.sampled_from([world.v1, world.v2, world.v3, world.v4,
                                    "v9999-20260101T000000Z", "../x", "", None]),
        "sha256": st.sampled_from([p["sha256"] for p in world.payloads.values()]
                                  + ["0" * 64, None]),
        "artifact": st.sampled_from([None, "versions/x/model.ubj"]),
        "feature_schema": st.sampled_from([SCHEMA, "", "f" * 64]),
        "role": st.sampled_from(["champion", "shadow", "other"]),
        "action": st.sampled_from(ACTIONS),
        "metrics": st.dictionaries(TEXT, JSON, max_size=3),
        "at": SCALARS, "reason": TEXT, "extra": JSON,
    }
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from(sorted(odd)))
        if draw(st.integers(0, 4)) == 0:
            record.pop(field, None)
        else:
            record[field] = draw(odd[field] | JSON if draw(st.integers(0, 4)) == 0 else odd[field])
    return record


KEYS = st.sampled_from([b"champion", b"shadow", b"champion", b"", b"Champion", b"shadow\x00",
                        "\ud800".encode("utf-8", "surrogatepass")]) | st.binary(max_size=16) | st.none()


ROLE_KEYS = st.sampled_from([b"champion", b"shadow"])


@PROPERTY
@given(data=st.data())
def test_no_model_updates_record_raises_or_moves_the_champion(shared_world, data):
    w = shared_world
    key = data.draw(KEYS)
    value = data.draw(wire(announcement_records(w)))
    check_every_record_is_accounted_for_and_the_champion_stays(w, key, value)


@PROPERTY
@given(data=st.data())
def test_no_announcement_like_record_moves_the_champion(shared_world, data):
    # Keyed by a role and shaped like an announcement: these reach the registry checks.
    w = shared_world
    key = data.draw(ROLE_KEYS)
    value = dumps(data.draw(announcement_records(w)))
    check_every_record_is_accounted_for_and_the_champion_stays(w, key, value)


def check_every_record_is_accounted_for_and_the_champion_stays(w: World, key, value) -> None:
    before = w.swaps()
    w.announce(key, value)
    assert w.scorer.champion is w.champion  # v1 is the registry's champion: nothing else may decide
    assert w.swaps() == before + 1       # every record in exactly one outcome
    assert w.swaps("refused") == w.refusals()


@PROPERTY
@given(records=st.lists(st.tuples(KEYS, st.one_of(st.binary(max_size=32), JSON.map(dumps),
                                                      DEEP.map(str.encode), st.none())),
                        max_size=20))
def test_pick_announcements_never_raises(records):
    refused = []
    history = pick_announcements([(k, v, i) for i, (k, v) in enumerate(records)],
                                 on_refused=refused.append)
    kept = sum(len(found) for found in history.values())
    assert kept + len(refused) == len(records)
    for ann in refused:
        assert ann.refused in ANNOUNCEMENT_REFUSALS and isinstance(ann.error, str)
    assert all(check_announcement(None, None).refused == "unknown_role" for _ in [0])


SYNTHETIC = st.fixed_dictionaries(
    {"synthetic": st.just(True) | JSON, "version": TEXT,
     "features": st.one_of(
         st.fixed_dictionaries({n: st.floats(-1e3, 1e3) for n in FEATURE_NAMES}),
         st.dictionaries(st.sampled_from(FEATURE_NAMES) | TEXT, SCALARS, max_size=len(FEATURE_NAMES) + 2),
         st.fixed_dictionaries({n: SCALARS for n in FEATURE_NAMES}),
         JSON)},
    optional={"feature_schema": st.just(SCHEMA) | TEXT, "at": SCALARS})


@PROPERTY
@given(value=wire(SYNTHETIC))
def test_no_synthetic_fraud_raises_and_only_bounded_finite_ones_are_learned(shared_world, value):
    w = shared_world
    learned, refused, n = w.learned(), w.synthetic_refused(), w.learner.n_learned
    ok = w.follower.on_synthetic(value)
    assert w.learned() + w.synthetic_refused() == learned + refused + 1
    assert w.learner.n_learned == n + ok
    if ok:
        features = json.loads(value)["features"]
        assert set(features) == set(FEATURE_NAMES)
        assert all(math.isfinite(v) and abs(v) <= w.settings.max_feature_abs
                   for v in features.values())
    assert w.scorer.champion is w.champion


# -- the trainer: training-examples and control ---------------------------------------------------


NOW = 1_790_000_000.0


def training_example(tx_id="t1", event_ts=NOW - DAY, **changes) -> dict:
    return {"tx_id": tx_id, "card_id": "card-1", "event_ts": event_ts, "label_ts": event_ts + DAY,
            "is_fraud": True, "features": {n: 1.0 for n in FEATURE_NAMES},
            "scores": {"online": 0.5}, **changes}


@pytest.fixture
def trainer(tmp_path) -> Trainer:
    t = Trainer(load_settings(model_registry=tmp_path / "registry", trainer_metrics_port=0),
                metrics_registry=CollectorRegistry())
    for i in range(5):
        assert t.reader.on_example(dumps(training_example(f"seed{i}", NOW - (i + 1) * DAY)),
                                   now=NOW) == "kept"
    return t


def examples(trainer: Trainer, outcome: str) -> float:
    return trainer.metrics.registry.get_sample_value("fraudstream_trainer_examples_total",
                                                     {"outcome": outcome}) or 0.0


@pytest.mark.parametrize("value, outcome", [
    (training_example(event_ts=NOW + 400 * DAY), "future"),
    (training_example(event_ts=NOW + 2 * DAY), "future"),
    (training_example(features={"amount": 1e308}), "invalid"),
    (training_example(features={"amount": 2e9}), "invalid"),
    (training_example(features={"amount": "12"}), "invalid"),
    (training_example(features={"amount": True}), "invalid"),
    (training_example(scores={"online": 1e308}), "invalid"),
    (training_example(event_ts=-5.0), "invalid"),
    (training_example(tx_id="seed0", event_ts=NOW - DAY), "ignored"),   # a duplicate
    (training_example(tx_id="old", event_ts=NOW - 90 * DAY), "ignored"),  # older than the window
    # extra keys are ignored by the window; the contract may bound how many there can be
    (training_example(features={f"k{i}": float(i) for i in range(10_000)}), {"kept", "invalid"}),
    (b'{"tx_id":"x","card_id":"c","event_ts":1' + b"0" * 400 + b',"label_ts":1,"is_fraud":true,'
     b'"features":{}}', "invalid"),
    (b'{"tx_id":"x","card_id":"c","event_ts":1,"label_ts":1,"is_fraud":true,'
     b'"features":{"amount":1' + b"0" * 400 + b"}}", "invalid"),
    (b"\xff\xfe", "invalid"),
    (None, "invalid"),
    (b"[" * 1000 + b"]" * 1000, "invalid"),
])
def test_odd_training_examples_are_counted_and_never_empty_the_window(trainer, value, outcome):
    raw = value if isinstance(value, (bytes, type(None))) else dumps(value)
    got = trainer.reader.on_example(raw, "test", now=NOW)
    assert got in outcome if isinstance(outcome, set) else got == outcome
    assert examples(trainer, got) == (6 if got == "kept" else 1)
    assert trainer.reader.window.newest_ts <= NOW + trainer.settings.max_future_skew_s
    assert {f"seed{i}" for i in range(5)} <= set(trainer.reader.window.snapshot().tx_id)


def test_control_requests_are_counted_when_refused(trainer):
    good = {"command": "retrain", "request_id": "abc", "at": 1.0}
    assert trainer.on_control(dumps(good)) == good
    for bad in [None, b"\xff", b"{}", dumps({**good, "command": "drop_tables"}),
                dumps({**good, "request_id": "\ud800"}), b"[" * 1000 + b"]" * 1000,
                dumps({**good, "extra": 1})]:
        assert trainer.on_control(bad) is None
    refused = trainer.metrics.registry.get_sample_value(
        "fraudstream_trainer_control_refused_total", {"topic": "control", "reason": "malformed"})
    assert refused == 7


def test_the_trainer_counts_refused_model_updates(trainer):
    records = [(b"champion", b"junk", 0), (None, b"{}", 1),
               (b"champion", dumps({"version": None, "artifact": None, "sha256": None,
                                    "metrics": {}}), 2)]
    pick_announcements(records, on_refused=trainer.publisher.refused_announcement)
    get = trainer.metrics.registry.get_sample_value
    assert get("fraudstream_trainer_control_refused_total", {"topic": "model-updates",
                                                     "reason": "malformed"}) == 1
    assert get("fraudstream_trainer_control_refused_total", {"topic": "model-updates",
                                                     "reason": "unknown_role"}) == 1
    assert get("fraudstream_trainer_control_refused_total", {"topic": "model-updates",
                                                     "reason": "champion_clear"}) == 1


EXAMPLES = st.fixed_dictionaries(
    {"tx_id": TEXT, "card_id": TEXT,
     "event_ts": st.floats(NOW - 60 * DAY, NOW + 60 * DAY) | SCALARS,
     "label_ts": st.floats(0, NOW) | SCALARS, "is_fraud": st.booleans() | JSON,
     "features": st.dictionaries(st.sampled_from(FEATURE_NAMES) | TEXT, SCALARS, max_size=6) | JSON},
    optional={"scores": st.dictionaries(TEXT, SCALARS, max_size=3) | JSON, "extra": JSON})


@PROPERTY
@given(value=wire(EXAMPLES))
def test_no_training_example_raises_or_moves_the_window_past_the_clock(trainer, value):
    outcome = trainer.reader.on_example(value, "test", now=NOW)
    assert outcome in ("kept", "ignored", "future", "invalid")
    assert trainer.reader.window.newest_ts <= NOW + trainer.settings.max_future_skew_s
    assert {f"seed{i}" for i in range(5)} <= set(trainer.reader.window.snapshot().tx_id)
    X = trainer.reader.window.snapshot().X
    assert np.isfinite(X).all() and (np.abs(X) <= trainer.settings.max_feature_abs).all()


CONTROL = st.fixed_dictionaries({"command": st.just("retrain") | JSON, "request_id": TEXT,
                                 "at": SCALARS}, optional={"reason": TEXT, "extra": JSON})


@PROPERTY
@given(value=wire(CONTROL))
def test_no_control_record_raises(trainer, value):
    request = trainer.on_control(value)
    assert request is None or isinstance(request["request_id"], str)


# -- against the real broker ------------------------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.slow
def test_garbage_on_every_control_topic_while_a_worker_and_a_trainer_run(settings, tmp_path):
    from fraudstream.stream.announce import announce
    from fraudstream.stream.processes import TrainerProcess, WorkerProcess, settings_env
    from fraudstream.stream.topics import create_topics
    from kafka_helpers import produce_raw
    from trainer_helpers import model_version, wait_for

    create_topics(settings)
    registry = Registry(settings.model_registry)
    v1, v2 = publish_model(registry, 1), publish_model(registry, 2)
    registry.set_champion(v1, "test")
    announce(settings, {**registry.announcement(v1), "action": "promote", "reason": "test"})
    null_champion = dumps({"version": None, "artifact": None, "sha256": None, "metrics": {},
                           "role": "champion", "action": "clear"})
    not_champion = dumps({**registry.announcement(v2), "action": "promote"})
    deep = b"[" * 1000 + b"]" * 1000
    t = settings.topics
    # Garbage after the last valid announcement: both processes start on top of it.
    produce_raw(settings, t.model_updates, [(b"champion", null_champion), (b"champion", b"\xff"),
                                            (b"champion", not_champion), (b"nobody", deep),
                                            (b"champion", None)])
    env = settings_env(settings, app_id=settings.app_id, trainer_interval_s=3600,
                       trainer_new_frauds_trigger=100_000)
    worker = WorkerProcess(env, tmp_path / "w.log", "w1")
    trainer = TrainerProcess(env, tmp_path / "trainer.log")
    procs = (worker, trainer)
    try:
        wait_for("the worker on v1", lambda: model_version(worker) == v1, 120, *procs)
        wait_for("the trainer ready", lambda: "trainer ready" in trainer.log_path.read_text(),
                 120, *procs)
        big = {f"k{i}": float(i) for i in range(10_000)}
        now = time.time()
        example = training_example("x1", now - DAY)
        examples_garbage = [
            dumps({**example, "tx_id": "future", "event_ts": now + 365 * DAY}),
            dumps({**example, "tx_id": "huge", "features": {"amount": 1e308}}),
            dumps({**example, "tx_id": "wide", "features": big}),
            b'{"tx_id":"int","card_id":"c","event_ts":1,"label_ts":1,"is_fraud":true,'
            b'"features":{"amount":1' + b"0" * 400 + b"}}",
            b"\x00\x01", deep]
        produce_raw(settings, t.training_examples, [(b"card", v) for v in examples_garbage])
        produce_raw(settings, t.control, [(b"r", b"junk"), (b"r", deep),
                                          (b"r", dumps({"command": "drop", "request_id": "x",
                                                        "at": 1}))])
        wait_for("the trainer's refusals", lambda: (trainer.metric(
            "fraudstream_trainer_control_refused_total", {"topic": "control"}) or 0) >= 3
            and (trainer.metric("fraudstream_trainer_examples_total",
                                {"outcome": "invalid"}) or 0) >= 4, 60, *procs)
        assert trainer.metric("fraudstream_trainer_examples_total", {"outcome": "future"}) == 1

        def synthetic_refused():
            # the follower reads synthetic-frauds from its end: send until it has seen some
            produce_raw(settings, t.synthetic_frauds, [
                (b"v", b"junk"), (b"v", dumps(synthetic_record(amount=1e308))),
                (b"v", dumps(synthetic_record(x_unknown=1.0)))])
            return (worker.metric("fraudstream_synthetic_refused_total") or 0) >= 3

        wait_for("the worker's synthetic refusals", synthetic_refused, 60, *procs, every=2)
        produce_raw(settings, t.model_updates, [(b"champion", null_champion),
                                                (b"champion", not_champion), (b"shadow", deep)])

        def refused(reason):
            return worker.metric("fraudstream_model_refusals_total", {"reason": reason}) or 0

        # Both refusals are waited for: the follower handles the two records one after the
        # other, and a scrape can fall between them.
        wait_for("the worker's refusals while running", lambda: refused("champion_clear") >= 2
                 and refused("not_champion") >= 2, 60, *procs)
        assert model_version(worker) == v1
        assert worker.proc.poll() is None and trainer.proc.poll() is None
        assert registry.champion() == v1
    finally:
        for p in procs:
            p.stop()
