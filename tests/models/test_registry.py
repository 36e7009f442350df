"""The model registry: atomic versions, checksums, champion history, pruning, announcements."""

import hashlib
import json
import shutil
import threading

import numpy as np
import pytest

from fraudstream.models import registry as registry_module
from fraudstream.models.batch import XGBoostModel, XGBParams
from fraudstream.models.features import schema_hash
from fraudstream.models.registry import MODEL_FILE, ArtifactError, Registry, sha256_file
from fraudstream.stream.contract import validate

NAMES = ["a", "b", "c"]
SCHEMA = schema_hash(NAMES)
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, len(NAMES)))
    y = (X[:, 0] > 0.5).astype(int)
    return XGBoostModel.train(X, y, NAMES, XGBParams(n_estimators=5, max_depth=2))


@pytest.fixture
def reg(tmp_path):
    return Registry(tmp_path / "registry", keep=3)


def publish(reg, model, now=T0, **extra):
    meta = {"feature_names": NAMES, "feature_schema": SCHEMA,
            "report": {"holdout": {"challenger": {"average_precision": 0.5}}}, **extra}
    files = {MODEL_FILE: model.to_bytes(), "diffusion.pt": b"diffusion weights"}
    return reg.publish(files, meta, now=now)


def flip_one_byte(path, at=100):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def staging_entries(reg):
    return sorted(p.name for p in reg.staging_dir.iterdir()) if reg.staging_dir.exists() else []


# -- publish -----------------------------------------------------------------------------------


def test_publish_writes_a_version_with_checksummed_metadata(reg, model):
    info = publish(reg, model, now=T0 + 61)
    assert info.version == "v0001-20260101T000101Z"
    assert info.path == reg.root / "versions" / info.version and info.path.is_dir()
    assert sorted(p.name for p in info.path.iterdir()) == ["diffusion.pt", "metadata.json", MODEL_FILE]
    meta = json.loads((info.path / "metadata.json").read_text())
    assert meta == info.metadata
    assert meta["version"] == info.version and meta["created_at"] == T0 + 61
    assert meta["created_at_utc"] == "2026-01-01T00:01:01Z" and info.created_at == T0 + 61
    assert meta["feature_names"] == NAMES and meta["feature_schema"] == SCHEMA
    blob = model.to_bytes()
    assert meta["files"][MODEL_FILE] == {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    assert meta["files"]["diffusion.pt"]["sha256"] == sha256_file(info.path / "diffusion.pt")
    assert (info.path / MODEL_FILE).read_bytes() == blob
    assert reg.versions() == [info.version] and staging_entries(reg) == []


def test_a_version_says_where_its_training_rows_end(reg, model):
    """The trainer counts a champion's staleness from its cycle's training end."""
    assert publish(reg, model, window={"train_end_ts": T0 - 86400}).trained_until == T0 - 86400
    assert reg.info(reg.versions()[-1]).trained_until == T0 - 86400
    assert publish(reg, model, now=T0 + 1).trained_until is None  # published before it was kept
    assert publish(reg, model, now=T0 + 2, window={"train_end_ts": "soon"}).trained_until is None


def test_publish_copies_files_given_as_paths(reg, model, tmp_path):
    src = tmp_path / "online.pkl"
    src.write_bytes(b"checkpoint")
    info = reg.publish({MODEL_FILE: model.to_bytes(), "online.pkl": src}, {}, now=T0)
    assert (info.path / "online.pkl").read_bytes() == b"checkpoint"
    assert info.metadata["files"]["online.pkl"]["bytes"] == len(b"checkpoint")


def test_version_ids_are_monotone_even_when_the_clock_goes_back(reg, model):
    versions = [publish(reg, model, now=now).version for now in (T0 + 3600, T0, T0 + 7200)]
    assert [v[:5] for v in versions] == ["v0001", "v0002", "v0003"]
    assert reg.versions() == versions
    assert versions[1].endswith("20260101T000000Z")  # the id still carries its own time


def test_versions_sort_by_number_past_9999(reg, model):
    for name in ("v9999-20260101T000000Z", "v10000-20260101T000000Z"):
        (reg.versions_dir / name).mkdir(parents=True)
    (reg.versions_dir / "not-a-version").mkdir()
    assert reg.versions() == ["v9999-20260101T000000Z", "v10000-20260101T000000Z"]
    assert publish(reg, model).version.startswith("v10001-")


def test_publish_needs_a_model_and_plain_file_names(reg, model):
    with pytest.raises(ValueError, match=MODEL_FILE):
        reg.publish({"diffusion.pt": b"x"}, {})
    for bad in ("../escape", ".hidden", "metadata.json", "sub/dir"):
        with pytest.raises(ValueError, match="bad artifact file name"):
            reg.publish({MODEL_FILE: model.to_bytes(), bad: b"x"}, {})
    assert reg.versions() == [] and staging_entries(reg) == []
    assert not (reg.root / "escape").exists()


def test_a_publish_that_fails_midway_leaves_no_version_and_no_debris(reg, model, tmp_path):
    publish(reg, model)
    files = {MODEL_FILE: model.to_bytes(), "online.pkl": tmp_path / "does-not-exist.pkl"}
    with pytest.raises(FileNotFoundError):
        reg.publish(files, {"feature_names": NAMES})
    assert len(reg.versions()) == 1 and staging_entries(reg) == []
    assert publish(reg, model).version.startswith("v0002-")  # no id was used up


def test_a_killed_writers_staging_directory_is_never_listed_and_is_cleaned(reg, model):
    publish(reg, model)
    # What a writer killed before its rename leaves: a half-written version in staging.
    debris = reg.staging_dir / "v-killed"
    debris.mkdir(parents=True)
    (debris / MODEL_FILE).write_bytes(b"half a mod")
    (reg.staging_dir / "stray-file").write_bytes(b"x")
    assert len(reg.versions()) == 1
    assert reg.clean_staging() == 2
    assert staging_entries(reg) == [] and len(reg.versions()) == 1
    assert reg.clean_staging() == 0


def test_clean_staging_without_a_registry_is_a_no_op(tmp_path):
    assert Registry(tmp_path / "nothing").clean_staging() == 0
    assert Registry(tmp_path / "nothing").versions() == []


def test_concurrent_publishers_get_distinct_versions(reg, model):
    got, errors = [], []

    def writer():
        try:
            for _ in range(3):
                got.append(publish(reg, model).version)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(got) == reg.versions() and len(set(got)) == 12
    for v in got:
        reg.verify(v)


def test_keep_must_allow_a_rollback(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        Registry(tmp_path, keep=1)


# -- verify and load -----------------------------------------------------------------------------


def test_an_intact_version_verifies_and_loads(reg, model):
    v = publish(reg, model).version
    sha = reg.info(v).metadata["files"][MODEL_FILE]["sha256"]
    assert reg.verify(v, SCHEMA, sha).version == v
    loaded = reg.load_batch_model(v, SCHEMA, sha)
    assert loaded.version == v and loaded.feature_names == NAMES
    X = np.random.default_rng(1).normal(size=(20, len(NAMES)))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert reg.file_path(v, "diffusion.pt") == reg.versions_dir / v / "diffusion.pt"
    with pytest.raises(ArtifactError, match="has no online.pkl"):
        reg.file_path(v, "online.pkl")


@pytest.mark.parametrize("name", [MODEL_FILE, "diffusion.pt"])
def test_one_flipped_byte_fails_verification(reg, model, name):
    v = publish(reg, model).version
    flip_one_byte(reg.versions_dir / v / name, at=5)
    with pytest.raises(ArtifactError, match=f"{name} sha256"):
        reg.verify(v)


@pytest.mark.parametrize("name", [MODEL_FILE, "diffusion.pt"])
def test_a_deleted_file_fails_verification(reg, model, name):
    v = publish(reg, model).version
    (reg.versions_dir / v / name).unlink()
    with pytest.raises(ArtifactError, match=f"{name} is missing"):
        reg.verify(v)


def test_a_wrong_announced_sha256_fails_verification(reg, model):
    v = publish(reg, model).version
    with pytest.raises(ArtifactError, match="not the announced artifact"):
        reg.verify(v, sha256="0" * 64)
    with pytest.raises(ArtifactError, match="not the announced artifact"):
        reg.load_batch_model(v, sha256="0" * 64)


def test_another_feature_schema_fails_verification(reg, model):
    v = publish(reg, model).version
    other = schema_hash(list(reversed(NAMES)))
    with pytest.raises(ArtifactError, match="another feature schema"):
        reg.verify(v, other)
    with pytest.raises(ArtifactError, match="another feature schema"):
        reg.load_batch_model(v, other)


@pytest.mark.parametrize("damage", ["missing", "garbage", "other-version", "no-model-listed"])
def test_bad_metadata_fails_verification(reg, model, damage):
    v = publish(reg, model).version
    path = reg.versions_dir / v / "metadata.json"
    meta = json.loads(path.read_text())
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_text("{not json")
    elif damage == "other-version":
        path.write_text(json.dumps({**meta, "version": "v0999-20260101T000000Z"}))
    else:
        del meta["files"][MODEL_FILE]
        path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError):
        reg.verify(v)


@pytest.mark.parametrize("version", ["v0042-20260101T000000Z", "../../etc", "champion.json", ""])
def test_unknown_versions_are_artifact_errors(reg, model, version):
    publish(reg, model)
    with pytest.raises(ArtifactError, match="no version"):
        reg.verify(version)


def test_load_refuses_a_corrupted_artifact_before_deserialising_it(reg, model, monkeypatch):
    v = publish(reg, model).version
    flip_one_byte(reg.versions_dir / v / MODEL_FILE)

    def must_not_run(*args, **kwargs):
        raise AssertionError("a file that failed its checksum was deserialised")

    monkeypatch.setattr(XGBoostModel, "from_bytes", must_not_run)
    with pytest.raises(ArtifactError, match="sha256"):
        reg.load_batch_model(v, SCHEMA)


def test_load_turns_a_bad_model_or_missing_names_into_artifact_errors(reg, model):
    not_xgb = reg.publish({MODEL_FILE: b"garbage"}, {"feature_names": NAMES}, now=T0).version
    with pytest.raises(ArtifactError, match="not an XGBoost model"):
        reg.load_batch_model(not_xgb)
    no_names = reg.publish({MODEL_FILE: model.to_bytes()}, {}, now=T0).version
    with pytest.raises(ArtifactError, match="feature_names"):
        reg.load_batch_model(no_names)
    wrong_names = reg.publish({MODEL_FILE: model.to_bytes()}, {"feature_names": ["a"]}, now=T0).version
    with pytest.raises(ArtifactError, match="expects 3 features"):
        reg.load_batch_model(wrong_names)


# -- champion, rollback, prune -------------------------------------------------------------------


def test_no_champion_yet(reg):
    assert reg.champion() is None and reg.champion_state() == {}
    with pytest.raises(ArtifactError, match="no previous champion"):
        reg.rollback()


def test_promotions_build_a_history_that_rollback_walks_back(reg, model):
    v1, v2, v3 = (publish(reg, model).version for _ in range(3))
    reg.set_champion(v1, "first", SCHEMA, now=T0)
    reg.set_champion(v2, "better", SCHEMA, now=T0 + 1)
    state = reg.set_champion(v3, "better still", SCHEMA, now=T0 + 2)
    assert state["version"] == v3 and state["history"] == [v1, v2]
    assert state["reason"] == "better still" and state["updated_at"] == T0 + 2
    assert state["updated_at_utc"] == "2026-01-01T00:00:02Z"
    assert reg.champion_state() == state and reg.champion() == v3

    assert reg.rollback("bad precision", now=T0 + 3)["version"] == v2
    assert reg.champion_state()["history"] == [v1]
    assert reg.champion_state()["reason"] == "bad precision"
    assert reg.rollback()["version"] == v1 and reg.champion_state()["history"] == []
    with pytest.raises(ArtifactError, match="no previous champion"):
        reg.rollback()
    assert reg.champion() == v1  # a failed rollback changes nothing


def test_promoting_the_champion_again_does_not_grow_the_history(reg, model):
    v1, v2 = publish(reg, model).version, publish(reg, model).version
    reg.set_champion(v1, "first")
    reg.set_champion(v2, "second")
    assert reg.set_champion(v2, "again")["history"] == [v1]


def test_history_is_bounded_by_keep(reg, model):
    versions = [publish(reg, model).version for _ in range(6)]
    for v in versions:
        reg.set_champion(v, "next")
    assert reg.champion_state()["history"] == versions[-4:-1]  # keep=3


def test_set_champion_refuses_an_unverified_version(reg, model):
    v1, v2 = publish(reg, model).version, publish(reg, model).version
    reg.set_champion(v1, "first")
    flip_one_byte(reg.versions_dir / v2 / MODEL_FILE)
    with pytest.raises(ArtifactError):
        reg.set_champion(v2, "corrupt")
    with pytest.raises(ArtifactError, match="another feature schema"):
        reg.set_champion(v1, "other schema", schema_hash(["x"]))
    assert reg.champion_state()["version"] == v1 and reg.champion_state()["history"] == []


@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_rollback_skips_a_damaged_previous_version(reg, model, damage):
    v1, v2, v3 = (publish(reg, model).version for _ in range(3))
    for v in (v1, v2, v3):
        reg.set_champion(v, "next")
    if damage == "flip":
        flip_one_byte(reg.versions_dir / v2 / MODEL_FILE)
    else:
        shutil.rmtree(reg.versions_dir / v2)
    state = reg.rollback()
    assert state["version"] == v1 and state["history"] == []


def test_a_corrupt_champion_file_is_an_artifact_error(reg):
    reg.root.mkdir(parents=True)
    reg.champion_file.write_text("{torn")
    with pytest.raises(ArtifactError, match="unreadable"):
        reg.champion()


def test_champion_file_is_replaced_atomically_without_temp_files(reg, model):
    v1, v2 = publish(reg, model).version, publish(reg, model).version
    reg.set_champion(v1, "first")
    reg.set_champion(v2, "second")
    reg.rollback()
    assert json.loads(reg.champion_file.read_text())["version"] == v1
    assert sorted(p.name for p in reg.root.iterdir()) == [".lock", ".staging", "champion.json", "versions"]


def test_a_failed_champion_write_keeps_the_old_file_and_leaves_no_temp_file(reg, model, monkeypatch):
    v1, v2 = publish(reg, model).version, publish(reg, model).version
    reg.set_champion(v1, "first")
    before = reg.champion_file.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry_module.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        reg.set_champion(v2, "second")
    monkeypatch.undo()
    assert reg.champion_file.read_bytes() == before  # readers still see the old champion
    leftovers = [p.name for p in reg.root.iterdir() if p.name.startswith(".champion-")]
    assert leftovers == [], f"temp files left next to champion.json: {leftovers}"
    assert reg.set_champion(v2, "second")["version"] == v2  # the lock was released


def test_prune_keeps_the_newest_plus_the_champion_and_its_previous(reg, model):
    versions = [publish(reg, model).version for _ in range(8)]
    v1, v2 = versions[:2]
    reg.set_champion(v1, "first")
    reg.set_champion(v2, "second")  # champion v2, previous v1: both old
    doomed = reg.prune()
    assert doomed == versions[2:5]
    assert reg.versions() == [v1, v2, *versions[5:]]  # keep=3 newest + champion + previous
    assert reg.prune() == []
    assert reg.rollback()["version"] == v1


def test_prune_without_a_champion_keeps_the_newest(reg, model):
    versions = [publish(reg, model).version for _ in range(5)]
    assert reg.prune() == versions[:2]
    assert reg.versions() == versions[2:]


# -- announcement --------------------------------------------------------------------------------


def test_announcement_satisfies_the_contract(reg, model):
    v = publish(reg, model).version
    a = reg.announcement(v, now=T0 + 5)
    assert validate("model-updates", a) == []
    assert a == {
        "version": v,
        "artifact": f"versions/{v}/{MODEL_FILE}",
        "sha256": sha256_file(reg.versions_dir / v / MODEL_FILE),
        "feature_schema": SCHEMA,
        "metrics": {"average_precision": 0.5},
        "role": "champion",
        "at": T0 + 5,
    }
    assert reg.load_batch_model(v, a["feature_schema"], a["sha256"]).version == v
    assert (reg.root / a["artifact"]).is_file()


def test_announcement_of_a_shadow_without_report_or_schema(reg, model):
    v = reg.publish({MODEL_FILE: model.to_bytes()}, {"feature_names": NAMES}).version
    a = reg.announcement(v, role="shadow")
    assert validate("model-updates", a) == []
    assert a["role"] == "shadow" and a["metrics"] == {} and a["feature_schema"] == ""


def test_announcement_refuses_a_damaged_version(reg, model):
    v = publish(reg, model).version
    flip_one_byte(reg.versions_dir / v / MODEL_FILE)
    with pytest.raises(ArtifactError):
        reg.announcement(v)
