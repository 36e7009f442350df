"""The augmentation study's report: text tables, Markdown and PNG plots."""

import json

from fraudstream.models.evaluation_report import format_table, write_report
from fraudstream.models.evaluation_stats import summarize_seeds


def test_table_lists_every_variant(tiny_evaluation):
    result = tiny_evaluation["result"]
    table = format_table(result)
    for v in result["variants"]:
        assert v in table
    assert "CP@100" in table and "±" in table
    assert format_table(result, markdown=True).startswith("| variant |")


def test_report_writes_markdown_and_plots(tiny_evaluation, tmp_path):
    paths = write_report(tiny_evaluation["result"], tmp_path / "report")
    for name in ("report", "pr_curves", "metrics", "projection", "marginals"):
        assert paths[name].exists() and paths[name].stat().st_size > 0, name
    for name in ("pr_curves", "metrics", "projection", "marginals"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = paths["report"].read_text()
    assert "diffusion_x3" in text and "C2ST" in text and "(projection.png)" in text
    assert "'n_estimators': 20" in text  # the classifier's settings


def test_the_report_leads_with_the_results_across_seeds(tiny_evaluation, tmp_path):
    result = dict(tiny_evaluation["result"])
    result["seeds"] = summarize_seeds([tiny_evaluation["result"], tiny_evaluation["result"]])
    json.dumps(result, allow_nan=False)
    text = write_report(result, tmp_path / "report")["report"].read_text()
    across = text.index("## Results across 2 seeds")
    assert across < text.index("## Results (mean ± std across windows)")
    assert "| diffusion_x3 |" in text[across:] and "The rest of this report is seed 0's." in text
