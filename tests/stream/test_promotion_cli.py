"""``fraudstream evaluate-promotion``: flags, the trainer's settings, the JSON."""

from __future__ import annotations

import json

from fraudstream.stream.cli import build_parser
from fraudstream.stream.config import load_settings


def run(argv, **settings):
    s = load_settings(**settings)
    args = build_parser(s).parse_args(argv)
    return args.handler(args, s)


def test_bad_flags_exit_2(capsys):
    assert run(["evaluate-promotion", "--mix", "nope"]) == 2
    assert run(["evaluate-promotion", "--cycles", "1"]) == 2
    assert "evaluate-promotion" in capsys.readouterr().err


def test_a_small_run_uses_the_trainers_settings_and_writes_its_json(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert run(["evaluate-promotion", "--customers", "200", "--cycles", "2",
                "--reference-seeds", "1", "--horizon-days", "3", "--json", str(out)],
               trainer_window_days=12.0, trainer_synthetic_ratio=0.0,
               trainer_xgb_estimators=30, trainer_bootstrap_resamples=100,
               trainer_promote_margin=0.01) == 0
    result = json.loads(out.read_text())
    assert result["study"]["window_days"] == 12.0 and result["refresh"]["promote_margin"] == 0.01
    # Every window has full features: the longest terminal window plus the label delay before it.
    assert result["study"]["burn_in_days"] == 30 + 7
    assert len(result["cycles"]) == 2 and result["agreement"]["counted"] <= 1
    assert "agreement:" in capsys.readouterr().out
