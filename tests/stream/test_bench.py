"""The benchmark's own arithmetic (how bunched an offered load was, its table) and its
scratch folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fraudstream.stream.bench import _bursts, _slowest_seconds, table
from fraudstream.stream.bench_support import core_speed_ms, scratch_dir
from fraudstream.stream.cli import build_parser
from fraudstream.stream.config import Settings, load_settings
from fraudstream.stream.load import ARRIVALS
from fraudstream.stream.processes import settings_env


def test_bursts_count_transactions_stamped_within_one_10ms_step():
    # pv's way: 200 stamped within a millisecond, every 90 ms
    bursty = np.concatenate([t + np.linspace(0, 0.001, 200) for t in np.arange(0, 3, 0.09)])
    assert _bursts(bursty) == {"burst_10ms_p99": 200.0, "burst_10ms_max": 200}
    steady = np.arange(0, 3, 1 / 2000)  # 2,000 tx/s, one every 0.5 ms
    got = _bursts(steady)
    assert 19 <= got["burst_10ms_p99"] <= 21 and got["burst_10ms_max"] <= 21


def test_the_slowest_seconds_find_an_episode_in_the_load():
    stamps = 1_700_000_000 + np.arange(0, 10, 1 / 1000)  # 10 s at 1,000 tx/s
    lat = np.full(stamps.size, 20.0)
    lat[(stamps >= 1_700_000_006.2) & (stamps < 1_700_000_006.3)] = 120.0  # 100 ms of the seventh second stalled
    lat[(stamps >= 1_700_000_002.0) & (stamps < 1_700_000_002.005)] = 60.0  # a blip under the p99: ranked by its max
    worst = _slowest_seconds(stamps, lat, n=2)
    assert worst == [
        {"second": 6, "at": 1_700_000_006.0, "p99": 120.0, "max": 120.0, "over_p99": 100},
        {"second": 2, "at": 1_700_000_002.0, "p99": 20.0, "max": 60.0, "over_p99": 0}]


def test_the_table_says_how_the_load_was_offered():
    row = {"p50": 30.0, "p99": 60.0, "achieved_tps": 2000.0, "histogram_p99_le": 75.0,
           "loop_lag_p99_le": 15.0, "burst_10ms_p99": 200.0,
           "slowest_seconds": [{"second": 12, "p99": 140.0, "max": 151.0, "over_p99": 41}]}
    result = {"latency_by_offered_tps": {"2000": {"pipeline": row, "passthrough": row,
                                                  "p99_ratio": 1.0}},
              "load_streams": 1, "arrivals": "pv", "warmup_seconds": 5.0, "pipeline_tps": None}
    text = table(result)
    assert ("load: pv arrivals, 1 paced stream(s) per topic, 5 s warm-up; transactions per "
            "10 ms, p99 (2000: 200)") in text
    assert ("pipeline at 2000 tx/s, slowest seconds of the load: s12 p99 140 max 151 "
            "(41 over the load's p99)") in text
    assert "core speed" not in text  # a result from before the reading was taken
    assert "cores busy" not in text  # nor the cores
    busy = {"scoring": 0.6, "labels": 0.5, "broker": 0.4, "harness": 0.01, "total": 1.51}
    rows = {side: {**row, "cpu_cores": busy} for side in ("pipeline", "passthrough")}
    text = table({**result, "latency_by_offered_tps": {"2000": {**rows, "p99_ratio": 1.0}}})
    assert ("cores busy at 2000 tx/s: pipeline 1.51 (scoring 0.6, label process 0.5, broker "
            "0.4); passthrough 1.51") in text
    text = table({**result, "core_speed_ms": {"before": 124.3, "after": 189.0}})
    assert ("core speed (a fixed Python workload, lower is faster; runs compare where it "
            "agrees): 124.3 ms before, 189 ms after") in text


def test_the_table_says_where_the_cpu_went():
    cpu = {"scoring_us": 200.0, "labels_us": 220.0, "broker_us": 80.0, "harness_us": 5.0,
           "total_us": 505.0, "busy_cores": 1.68, "seconds": 30.0}
    result = {"latency_by_offered_tps": {}, "pipeline_tps": None, "cores": 2,
              "cpu_per_tx": {"passthrough": None, "pipeline": cpu}, "ratio_cpu_bound": 0.283}
    text = table(result)
    assert ("CPU a transaction, pipeline: 505 us (scoring 200, label process 220, broker 80, "
            "bench 5), 1.68 cores busy over 30 s") in text
    assert "allows on 2 busy cores: 0.283" in text
    assert "passthrough:" not in text  # a side not run


def test_the_core_speed_reading_grows_with_the_work():
    small, large = core_speed_ms(repeats=3, n=2_000), core_speed_ms(repeats=3, n=20_000)
    assert 0 < small < large


def test_a_scratch_folder_goes_when_the_run_ends_and_stays_when_it_fails(capsys):
    with scratch_dir("fraudstream-test-") as ok:
        (ok / "broker.log").write_text("fine")
    assert not ok.exists()
    with pytest.raises(RuntimeError, match="worker died"):
        with scratch_dir("fraudstream-test-") as failed:
            (failed / "worker.log").write_text("the reason")
            raise RuntimeError("worker died")
    try:
        assert (failed / "worker.log").read_text() == "the reason"  # kept for its logs
        assert f"kept {failed}" in capsys.readouterr().err
    finally:
        shutil.rmtree(failed)


def test_load_streams_below_one_is_refused_by_the_command_line(capsys):
    parser = build_parser(load_settings())
    assert parser.parse_args(["bench", "--load-streams", "3"]).load_streams == 3
    assert parser.parse_args(["bench"]).load_streams is None  # the bench's default: one
    for bad in ("0", "-2"):
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", "--load-streams", bad])
        assert "must be 1 or more" in capsys.readouterr().err


def test_warmup_and_arrivals_are_checked_by_the_command_line(capsys):
    parser = build_parser(load_settings())
    args = parser.parse_args(["bench"])
    assert args.arrivals == "poisson" and args.warmup_seconds is None  # defaults: 5 s
    bench = parser._subparsers._group_actions[0].choices["bench"]
    arrivals = next(a for a in bench._actions if a.dest == "arrivals")
    assert tuple(arrivals.choices) == ARRIVALS  # the command line offers what load.py paces
    args = parser.parse_args(["bench", "--arrivals", "pv", "--warmup-seconds", "0"])
    assert args.arrivals == "pv" and args.warmup_seconds == 0.0
    for bad in (["--warmup-seconds", "-1"], ["--warmup-seconds", "nan"], ["--arrivals", "x"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", *bad])
    assert "must be 0 or more" in capsys.readouterr().err


def test_the_benchs_workers_run_as_configured(monkeypatch, tmp_path):
    """A tuning set by the environment reaches the bench's workers (settings_env used to pass
    the broker, topics and folders only, so FRAUDSTREAM_COMMIT_INTERVAL_S=5 did nothing)."""
    monkeypatch.setenv("FRAUDSTREAM_COMMIT_INTERVAL_S", "5")
    monkeypatch.setenv("FRAUDSTREAM_EXTRA_FEATURES", '["mcc"]')
    configured = load_settings().model_copy(update={"state_dir": tmp_path, "batch_max": 77})
    env = settings_env(configured, as_configured=True, app_id="bench-x")
    assert env["FRAUDSTREAM_COMMIT_INTERVAL_S"] == "5.0" and env["FRAUDSTREAM_BATCH_MAX"] == "77"
    assert env["FRAUDSTREAM_APP_ID"] == "bench-x"  # the explicit ones win
    for key in [k for k in env if k.startswith("FRAUDSTREAM_")]:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = Settings()  # what the worker subprocess builds from that environment
    assert (child.commit_interval_s, child.batch_max, child.extra_features) == (5.0, 77, ("mcc",))
    assert child.state_dir == tmp_path
    plain = settings_env(configured, app_id="bench-x")  # the default: only what it names
    assert "FRAUDSTREAM_COMMIT_INTERVAL_S" not in plain and "FRAUDSTREAM_BATCH_MAX" not in plain
