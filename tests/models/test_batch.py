"""The batch model: training, scoring, the UBJSON artifact and the per-round check."""

import hashlib
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fraudstream.models.batch import XGBoostModel, XGBParams

NAMES = ["a", "b", "c", "d"]
PARAMS = XGBParams(n_estimators=20, max_depth=3)


def make_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES)))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.3, size=n) > 1.0).astype(np.int64)
    return X, y


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def model(data):
    X, y = data
    return XGBoostModel.train(X, y, NAMES, PARAMS, version="v-test")


# -- training and scoring ---------------------------------------------------------------------


def test_predictions_are_one_probability_per_row(model, data):
    X, y = data
    p = model.predict_proba(X)
    assert p.shape == (len(X),) and p.dtype == np.float64
    assert np.all((p >= 0) & (p <= 1))
    assert roc_auc_score(y, p) > 0.95  # it learned the signal, not a constant


def test_no_rows_give_no_scores(model):
    p = model.predict_proba(np.zeros((0, len(NAMES))))
    assert p.shape == (0,) and p.dtype == np.float64


def test_model_carries_names_and_version(model):
    assert model.feature_names == NAMES and model.version == "v-test"
    assert repr(model) == "XGBoostModel(version='v-test', features=4)"


def test_same_seed_same_model_and_inputs_not_mutated(data, model):
    X, y = data
    X_before, y_before = X.copy(), y.copy()
    again = XGBoostModel.train(X, y, NAMES, PARAMS)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


def test_feature_names_are_copied(data):
    X, y = data
    names = list(NAMES)
    m = XGBoostModel.train(X, y, names, PARAMS)
    names.append("e")
    assert m.feature_names == NAMES


@pytest.mark.parametrize("X_shape, y_len", [
    ((50, 3), 50),   # fewer columns than names
    ((50, 5), 50),   # more columns than names
    ((50, 4), 49),   # one label short
    ((200,), 200),   # not 2-D
])
def test_train_refuses_shapes_that_do_not_match(X_shape, y_len):
    X = np.ones(X_shape)
    y = np.r_[np.ones(y_len // 2), np.zeros(y_len - y_len // 2)]
    with pytest.raises(ValueError, match="do not match"):
        XGBoostModel.train(X, y, NAMES, PARAMS)


@pytest.mark.parametrize("label", [0, 1])
def test_train_needs_both_classes(label):
    with pytest.raises(ValueError, match="both classes"):
        XGBoostModel.train(np.ones((20, 4)), np.full(20, label), NAMES, PARAMS)


@pytest.mark.parametrize("columns", [3, 5])
def test_predict_with_another_feature_count_raises(model, data, columns):
    X = np.ones((10, columns))
    with pytest.raises(ValueError, match="expected: 4"):
        model.predict_proba(X)


def test_booster_and_names_must_agree(model):
    with pytest.raises(ValueError, match="expects 4 features, 3 names"):
        XGBoostModel(model.booster, NAMES[:3])


def test_with_version_relabels_without_retraining(model, data):
    X, _ = data
    renamed = model.with_version("v-other")
    assert renamed.version == "v-other" and model.version == "v-test"
    assert renamed.booster is model.booster and renamed.feature_names == model.feature_names
    np.testing.assert_array_equal(renamed.predict_proba(X), model.predict_proba(X))


# -- the per-round check ---------------------------------------------------------------------


def test_scale_pos_weight_raises_the_frauds_scores(data, model):
    X, y = data
    weighted = XGBoostModel.train(X, y, NAMES, replace(PARAMS, scale_pos_weight=5.0))
    assert weighted.predict_proba(X)[y == 1].mean() > model.predict_proba(X)[y == 1].mean()


def test_check_runs_after_every_round(data):
    X, y = data
    calls = []
    XGBoostModel.train(X, y, NAMES, XGBParams(n_estimators=7), check=lambda: calls.append(1))
    assert len(calls) == 7


def test_an_exception_from_check_aborts_training_and_propagates(data):
    X, y = data

    class Stop(Exception):
        pass

    calls = []

    def check():
        calls.append(1)
        if len(calls) == 3:
            raise Stop("deadline")

    with pytest.raises(Stop, match="deadline"):
        XGBoostModel.train(X, y, NAMES, XGBParams(n_estimators=50), check=check)
    assert len(calls) == 3  # stopped at once, not after the remaining 47 rounds


# -- the artifact ----------------------------------------------------------------------------


def test_round_trip_gives_identical_predictions(model, data):
    X, _ = data
    blob = model.to_bytes()
    assert isinstance(blob, bytes) and blob[:1] == b"{"  # UBJSON object, not a pickle
    back = XGBoostModel.from_bytes(blob, NAMES, "v-loaded", sha256=_sha(blob))
    assert back.version == "v-loaded" and back.feature_names == NAMES
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))
    assert back.to_bytes() == blob


def test_from_bytes_accepts_bytearray_and_memory_view(model, data):
    X, _ = data
    blob = model.to_bytes()
    for view in (bytearray(blob), memoryview(blob)):
        np.testing.assert_array_equal(
            XGBoostModel.from_bytes(view, NAMES, "v", sha256=_sha(blob)).predict_proba(X), model.predict_proba(X))


def test_from_bytes_checks_the_feature_count(model):
    with pytest.raises(ValueError, match="expects 4 features, 5 names"):
        XGBoostModel.from_bytes(model.to_bytes(), NAMES + ["e"], "v", sha256=_sha(model.to_bytes()))


@pytest.mark.parametrize("corrupt", [
    pytest.param(lambda b: b"garbage", id="garbage"),
    pytest.param(lambda b: b"{}", id="empty-object"),
    pytest.param(lambda b: b"\x80\x04\x95" + b[3:], id="pickle-header"),
    pytest.param(lambda b: bytes([b[0] ^ 0xFF]) + b[1:], id="first-byte-flipped"),
])
def test_from_bytes_refuses_what_is_not_a_model(model, corrupt):
    # Mostly "not an XGBoost model: ..."; a flipped first byte surfaces as XGBoost's own
    # UnicodeDecodeError, still the documented ValueError.
    bad = corrupt(model.to_bytes())
    with pytest.raises(ValueError):  # even with its own (matching) checksum
        XGBoostModel.from_bytes(bad, NAMES, "v", sha256=_sha(bad))


# XGBoost's UBJSON reader crashes the process on some inputs (std::terminate on an empty
# buffer, SIGSEGV on some flipped bytes, unbounded allocation on some truncations), which
# is why from_bytes checks a sha256 before parsing. These run in a child process, so a
# regression is a failed assertion instead of a dead test session.
_CHILD_PRELUDE = textwrap.dedent("""
    import hashlib
    import numpy as np
    from fraudstream.models.batch import XGBoostModel, XGBParams
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + rng.normal(scale=0.5, size=300) > 1).astype(int)
    blob = XGBoostModel.train(X, y, list("abcd"), XGBParams(n_estimators=20)).to_bytes()
""")


def _run_child(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _CHILD_PRELUDE + textwrap.dedent(body)],
                          capture_output=True, text=True, timeout=60)


def test_from_bytes_of_empty_bytes_raises_value_error_instead_of_aborting():
    child = _run_child("""
        try:
            XGBoostModel.from_bytes(b"", list("abcd"), "v", sha256=hashlib.sha256(b"").hexdigest())
        except ValueError:
            print("ValueError")
        else:
            print("accepted")
    """)
    assert child.returncode == 0 and child.stdout.strip() == "ValueError", (
        f"from_bytes(b'') ended the process (exit {child.returncode}): {child.stderr[-300:]!r}")


def test_a_flipped_byte_is_refused_before_xgboost_reads_it():
    # XGBoost's reader segfaults on about one flipped byte in five (measured: 90 of 496),
    # so from_bytes checks the sha256 of what it was given against the one written with
    # it. Every 53rd byte inverted, with the original checksum: ValueError, no crash.
    child = _run_child("""
        sha = hashlib.sha256(blob).hexdigest()
        for i in range(0, len(blob), 53):
            bad = bytearray(blob)
            bad[i] ^= 0xFF
            try:
                XGBoostModel.from_bytes(bytes(bad), list("abcd"), "v", sha256=sha)
            except ValueError:
                continue
            raise SystemExit(f"accepted a flipped byte at {i}")
        print("done")
    """)
    assert child.returncode == 0 and child.stdout.strip() == "done", (child.returncode, child.stderr[-300:])

def _sha(blob) -> str:
    return hashlib.sha256(bytes(blob)).hexdigest()


def test_a_truncated_model_is_refused_before_xgboost_reads_it(model):
    blob = model.to_bytes()
    for cut in (1, 100, len(blob) // 7, len(blob) - 1):
        with pytest.raises(ValueError, match="sha256"):
            XGBoostModel.from_bytes(blob[:cut], NAMES, "v", sha256=_sha(blob))
