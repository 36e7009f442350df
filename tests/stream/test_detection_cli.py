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


def test_a_small_run_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert run(["--customers", "300", "--days", "24", "--test-days", "8", "--mixes", "extended",
                "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| extended | extended | batch XGBoost |" in table
    report = json.loads(out.read_text())
    assert set(report["mixes"]) == {"extended"}
    assert report["mixes"]["extended"]["simulation"]["customers"] == 300
