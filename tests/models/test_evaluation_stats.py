"""The study's numbers across windows (mean ± std, paired with none) and across seeds
(means with t intervals)."""

import json
import math

import pytest
from scipy import stats

from fraudstream.models.evaluation_report import format_seeds_table
from fraudstream.models.evaluation_stats import summarize, summarize_seeds
from fraudstream.models.ranking import METRICS

VARIANTS = ["none", "class_weight", "diffusion_x1"]


def fake_result(seed, ap, delta, windows=2, gates=1, c2st=0.6, dcr=0.05):
    """The parts of an evaluate_augmentation result that summarize_seeds reads."""
    summary = {}
    for v in VARIANTS:
        d = 0.0 if v == "none" else delta
        summary[v] = {m: {"mean": ap + d} for m in METRICS}
        summary[v]["vs_none"] = {m: {"mean": d, "windows_ahead": windows if d > 0 else 0}
                                 for m in ("average_precision", "card_precision_at_k")}
    return {"config": {"seed": seed}, "variants": VARIANTS, "per_window": [{}] * windows,
            "summary": summary,
            "quality_summary": {"c2st_auc": {"mean": c2st}, "dcr_share": {"mean": dcr},
                                "gates_passed_windows": gates}}


def test_means_and_t_intervals_across_seeds():
    deltas = [0.02, -0.01, 0.00, 0.03, -0.02]
    results = [fake_result(s, 0.5 + 0.01 * s, d) for s, d in enumerate(deltas)]
    out = summarize_seeds(results, confidence=0.95)
    assert out["seeds"] == [0, 1, 2, 3, 4] and out["n_windows"] == 10
    d = out["summary"]["diffusion_x1"]["vs_none"]["average_precision"]
    mean, sd = sum(deltas) / 5, stats.tstd(deltas)
    half = stats.t.ppf(0.975, 4) * sd / math.sqrt(5)
    assert d["mean"] == pytest.approx(mean) and d["std"] == pytest.approx(sd)
    assert (d["low"], d["high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert d["low"] < 0 < d["high"]  # no finding: the interval holds 0
    assert d["seeds_ahead"] == 2 and d["windows_ahead"] == 4 and d["values"] == deltas
    ap = out["summary"]["none"]["average_precision"]
    assert ap["mean"] == pytest.approx(0.52) and ap["n"] == 5
    assert out["quality"]["gates_passed_windows"] == 5
    assert out["quality"]["dcr_share"]["mean"] == pytest.approx(0.05)
    json.dumps(out, allow_nan=False)


def test_one_seed_has_no_interval_and_missing_values_are_left_out():
    out = summarize_seeds([fake_result(0, 0.5, 0.01)])
    d = out["summary"]["diffusion_x1"]["vs_none"]["average_precision"]
    assert d["mean"] == pytest.approx(0.01) and d["low"] is None and d["high"] is None
    broken = fake_result(1, 0.5, 0.02)
    broken["summary"]["diffusion_x1"]["vs_none"]["average_precision"]["mean"] = None
    out = summarize_seeds([fake_result(0, 0.5, 0.01), broken, fake_result(2, 0.5, 0.03)])
    d = out["summary"]["diffusion_x1"]["vs_none"]["average_precision"]
    assert d["n"] == 2 and d["mean"] == pytest.approx(0.02) and d["values"][1] is None


def test_the_table_shows_each_variant_with_its_interval():
    out = summarize_seeds([fake_result(s, 0.5, 0.01 * s) for s in range(5)])
    table = format_seeds_table(out)
    lines = table.splitlines()
    assert lines[0].split()[0] == "variant" and "[95%]" in lines[0]
    row = next(line for line in lines if line.startswith("diffusion_x1"))
    d = out["summary"]["diffusion_x1"]["vs_none"]["average_precision"]
    assert f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" in row and "4/5" in row
    assert format_seeds_table(out, markdown=True).startswith("| variant |")


def test_results_of_other_variants_cannot_be_pooled():
    other = fake_result(1, 0.5, 0.0)
    other["variants"] = ["none"]
    with pytest.raises(ValueError, match="share their variants"):
        summarize_seeds([fake_result(0, 0.5, 0.0), other])
    with pytest.raises(ValueError, match="no results"):
        summarize_seeds([])


def test_windows_pair_each_variant_with_none_in_the_same_window():
    def window(none_ap, x1_ap):
        metrics = {m: 0.5 for m in METRICS}
        return {"variants": {"none": {**metrics, "average_precision": none_ap},
                             "diffusion_x1": {**metrics, "average_precision": x1_ap}}}

    per_window = [window(0.5, 0.6), window(0.7, 0.65), window(0.4, float("nan"))]
    out = summarize(per_window, ["none", "diffusion_x1"])
    ap = out["diffusion_x1"]["average_precision"]
    assert ap["mean"] == pytest.approx(0.625)
    assert ap["std"] == pytest.approx(stats.tstd([0.6, 0.65]))
    d = out["diffusion_x1"]["vs_none"]["average_precision"]
    assert d["mean"] == pytest.approx(0.025) and d["windows_ahead"] == 1  # NaN is left out
    assert out["none"]["vs_none"]["card_precision_at_k"]["mean"] == 0.0
