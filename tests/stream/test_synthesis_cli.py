"""``fraudstream evaluate-synthesis``: flags, and a tiny end-to-end run."""

from __future__ import annotations

import json

from fraudstream.stream.cli import build_parser
from fraudstream.stream.config import load_settings


def run(argv):
    args = build_parser(load_settings()).parse_args(["evaluate-synthesis", *argv])
    return args.handler(args, None)


def test_bad_flags_exit_2(capsys):
    assert run(["--targets", "everything"]) == 2
    assert "targets must be among" in capsys.readouterr().err
    assert run(["--target-generators", "conditional_w7", "--guidance", "1"]) == 2
    assert run(["--guidance", "one"]) == 2


def test_a_tiny_run_prints_every_variant_and_writes_json(tmp_path, capsys):
    out = tmp_path / "study.json"
    assert run(["--quick", "--customers", "300", "--windows", "1", "--seeds", "1",
                "--diffusion-steps", "20", "--conditional-steps", "20", "--guidance", "1",
                "--targets", "boundary", "--threads", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    for variant in ("none", "frauds_only", "conditional_w1", "frauds_only+boundary"):
        assert f"\n{variant} " in table
    report = json.loads(out.read_text())
    assert report["seeds"]["variants"] == ["none", "frauds_only", "conditional_w1",
                                           "frauds_only+boundary"]
    window = report["per_seed"][0]["per_window"][0]
    assert window["fits"]["frauds_only"]["steps"] == 20
    assert window["fits"]["conditional"]["steps"] == 20
