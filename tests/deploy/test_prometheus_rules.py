"""The Prometheus config and rules, checked and unit-tested with the real promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from fraudstream.stream.config import Settings

from deploy_helpers import ROOT, declared_metrics, github_anchors, metric_names

PROM_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
UNIT_TESTS = sorted((Path(__file__).parent / "promtool").glob("*.test.yml"))
RUNBOOK = ROOT / "docs" / "operations.md"


def _promtool(tools: dict[str, Path], *args: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run([str(tools["promtool"]), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return out


def _rules(kind: str) -> list[dict]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if kind in rule]


def test_promtool_accepts_the_config_and_its_rule_files(tools):
    out = _promtool(tools, "check", "config", PROM_DIR / "prometheus.yml")
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in out


def test_promtool_accepts_every_rule_file(tools):
    out = _promtool(tools, "check", "rules", *RULE_FILES)
    assert out.count("SUCCESS") == len(RULE_FILES)


@pytest.mark.parametrize("unit_test", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_rule_unit_tests_pass(tools, unit_test):
    # promtool resolves rule_files relative to the test file's folder.
    out = _promtool(tools, "test", "rules", unit_test.name, cwd=unit_test.parent)
    assert "SUCCESS" in out


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules("alert")}
    assert alerts - fires == set(), "alerts without a unit test that fires them"
    assert alerts - quiet == set(), "alerts without a unit test where they stay quiet"
    assert (fires | quiet) - alerts == set(), "unit tests of alerts that do not exist"


def test_every_alert_waits_and_says_what_to_do():
    anchors = github_anchors(RUNBOOK.read_text())
    for rule in _rules("alert"):
        name = rule["alert"]
        assert rule.get("for"), f"{name}: no `for:`, a single bad scrape would page"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        notes = rule["annotations"]
        assert notes.get("summary") and notes.get("description"), name
        doc, _, anchor = notes["runbook_url"].partition("#")
        assert doc == "docs/operations.md", name
        assert anchor == name.lower(), f"{name}: the anchor is the alert's name"
        assert anchor in anchors, f"{name}: docs/operations.md has no heading for #{anchor}"


def test_rules_use_only_declared_metrics_and_recorded_series():
    known = declared_metrics() | {"up"} | {rule["record"] for rule in _rules("record")}
    for rule in _rules("record") + _rules("alert"):
        used = metric_names(rule["expr"])
        assert used, rule
        assert used <= known, (rule.get("alert") or rule.get("record"), used - known)


def test_recording_rules_follow_the_naming_convention():
    for rule in _rules("record"):
        level, metric, operation = rule["record"].split(":")
        assert level and metric and operation, rule["record"]
        assert "fraudstream" in level + metric, rule["record"]


def test_scrape_config_finds_scaled_workers_and_the_trainer_through_dns():
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker = jobs["fraudstream-worker"]["dns_sd_configs"][0]
    trainer = jobs["fraudstream-trainer"]["dns_sd_configs"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    fields = Settings.model_fields
    assert worker["port"] == fields["metrics_port"].default and worker["names"][0] == "worker"
    assert set(worker["names"]) <= set(compose)  # and `worker-secure` of the compose profile `secure`
    assert trainer["port"] == fields["trainer_metrics_port"].default
    assert set(trainer["names"]) <= set(compose)
    assert "worker" in compose and "trainer" in compose
    # The alert rules select on these job names.
    text = "".join(path.read_text() for path in RULE_FILES)
    assert 'job="fraudstream-worker"' in text and 'job="fraudstream-trainer"' in text
