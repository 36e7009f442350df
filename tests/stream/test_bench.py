"""The benchmark's own arithmetic (how bunched an offered load was, its table) and its
scratch folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fraudstream.stream.bench import _bursts, table
from fraudstream.stream.bench_support import scratch_dir
from fraudstream.stream.cli import build_parser
from fraudstream.stream.config import load_settings


def test_bursts_count_transactions_stamped_within_one_10ms_step():
    # pv's way: 200 stamped within a millisecond, every 90 ms
    bursty = np.concatenate([t + np.linspace(0, 0.001, 200) for t in np.arange(0, 3, 0.09)])
    assert _bursts(bursty) == {"burst_10ms_p99": 200.0, "burst_10ms_max": 200}
    steady = np.arange(0, 3, 1 / 2000)  # 2,000 tx/s, one every 0.5 ms
    got = _bursts(steady)
    assert 19 <= got["burst_10ms_p99"] <= 21 and got["burst_10ms_max"] <= 21


def test_the_table_says_how_the_load_was_offered():
    row = {"p50": 30.0, "p99": 60.0, "achieved_tps": 2000.0, "histogram_p99_le": 75.0,
           "loop_lag_p99_le": 15.0, "burst_10ms_p99": 200.0}
    result = {"latency_by_offered_tps": {"2000": {"pipeline": row, "passthrough": row,
                                                  "p99_ratio": 1.0}},
              "load_streams": 1, "pipeline_tps": None}
    assert "load: 1 paced stream(s) per topic; transactions per 10 ms, p99 (2000: 200)" in \
        table(result)


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
