"""``fraudstream evaluate-detection``: flags, and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest

from fraudstream.stream.cli import build_parser
from fraudstream.stream.cli.evaluate_detection import parse_online
from fraudstream.stream.config import load_settings


def run(argv):
    args = build_parser(load_settings()).parse_args(["evaluate-detection", *argv])
    return args.handler(args, None)


def test_online_specs_parse_and_bad_ones_are_refused():
    specs = parse_online("binned, logreg:3")
    assert [s.name for s in specs] == ["binned", "logreg:3"]
    assert dict(specs[1].kwargs) == {"model": "logreg", "class_weight_fraud": 3.0}
    with pytest.raises(ValueError, match="unknown online model"):
        parse_online("svm")


def test_bad_flags_exit_2(capsys):
    assert run(["--mixes", "everything"]) == 2
    assert "unknown" in capsys.readouterr().err
    assert run(["--online", "svm"]) == 2
    assert run(["--handbook-windows", "-1"]) == 2
    assert "--handbook-windows" in capsys.readouterr().err


def test_too_short_a_stream_for_the_handbook_windows_exits_2(capsys):
    assert run(["--customers", "100", "--days", "30", "--test-days", "8", "--mixes", "handbook",
                "--online", "logreg"]) == 2
    assert "too short for the handbook" in capsys.readouterr().err


def test_a_small_run_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert run(["--customers", "150", "--days", "42", "--test-days", "8", "--mixes", "extended",
                "--handbook-windows", "3", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| extended | extended | batch XGBoost | (time split) |" in table
    assert "| extended | handbook | batch XGBoost | handbook 7/7/7 d x1, tuned on validation |" in table
    assert "trainer defaults 5/300/0.1" in table
    assert "| chosen depth / trees / rate |" in table
    report = json.loads(out.read_text())
    assert set(report["mixes"]) == {"extended"}
    mix = report["mixes"]["extended"]
    assert mix["simulation"]["customers"] == 150
    assert set(mix["batch"]) == set(mix["batch_handbook"]) == {"handbook", "extended"}
    h = mix["batch_handbook"]["extended"]
    assert h["protocol"]["n_windows"] == 3 and h["protocol"]["n_windows_fitted"] == 1  # 42 days
    assert h["grid"] == {"max_depth": [3, 6, 9], "n_estimators": [25, 50, 100],
                         "learning_rate": [0.1, 0.3]}
    (w,) = h["windows"]
    assert w["chosen"]["max_depth"] in (3, 6, 9) and w["chosen"]["n_estimators"] in (25, 50, 100)
    assert len(w["grid"]) == 18
    assert w["validation_window"]["test_end"] <= w["window"]["test_start"]
    assert w["rows"]["test_known_cards_excluded"] > 0
    assert mix["config"]["handbook"]["exclude_known_cards"] is True
