"""The Grafana dashboard: its structure, and every PromQL expression in it run against a real
Prometheus that scrapes a live worker and a live trainer (real broker, simulated traffic, one
trainer cycle), with the project's recording and alert rules loaded."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudstream.stream import simulator as sim
from fraudstream.stream.kafka_local import free_port
from fraudstream.stream.processes import TrainerProcess, WorkerProcess, settings_env
from fraudstream.stream.topics import create_topics

from deploy_helpers import ROOT, declared_metrics, metric_names
from kafka_helpers import produce_raw
from trainer_helpers import cli, model_version, produce, wait_for

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "fraudstream.json"
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))

# Grafana's built-in variables and the dashboard's own, as Grafana would expand them.
_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "$instance": ".*",
              "${instance}": ".*"}


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dash["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows keep their panels inside
    return out


def dashboard_queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """``(where, PromQL)`` for every panel target, variable query and annotation."""
    found = []
    for panel in _panels(dash):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
            assert m, f"variable {var['name']}: unsupported query {query!r}"
            found.append((f"variable {var['name']}", m.group(1)))
    for note in dash.get("annotations", {}).get("list", []):
        if note.get("expr"):
            found.append((f"annotation {note['name']!r}", note["expr"]))
    return found


def expand(expr: str) -> str:
    for name in sorted(_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, _VARIABLES[name])
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


# --- static: the dashboard and its provisioning agree with each other and the metrics -----
def test_dashboard_is_provisioned_with_the_datasource_its_panels_use():
    dash = _dashboard()
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (prom,) = datasources["datasources"]
    assert prom["type"] == "prometheus" and prom["url"] == "http://prometheus:9090"
    variable = next(v for v in dash["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == prom["uid"]
    for panel in _panels(dash):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and panel.get("description"), panel["title"]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/fraudstream.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{providers['providers'][0]['options']['path']}:ro" in mounts


def test_dashboard_panels_have_unique_ids_and_do_not_overlap():
    panels = _panels(_dashboard())
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine


def test_dashboard_shows_what_the_issue_asks_for():
    exprs = " ".join(expr for _, expr in dashboard_queries(_dashboard()))
    for name in ("fraudstream_transactions_scored_total", "fraudstream_end_to_end_latency_seconds_bucket",
                 "fraudstream_consumer_lag", "fraudstream_dead_letters_total", "fraudstream_decisions_total",
                 "fraudstream_score_bucket", "fraudstream_online_prequential_average_precision",
                 "fraudstream_model_prequential_average_precision", "fraudstream_model_info",
                 "fraudstream_trainer_champion_info", "fraudstream_trainer_cycles_total",
                 "fraudstream_trainer_cycle_duration_seconds", "fraudstream_trainer_phase_duration_seconds",
                 "fraudstream_trainer_quality_c2st_auc", "fraudstream_trainer_quality_dcr_share",
                 "fraudstream_trainer_holdout_metric"):
        assert name in exprs, name
    for q in ("0.50", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(fraudstream_end_to_end_latency" in exprs


def test_dashboard_names_only_declared_metrics_and_recorded_series():
    recorded = {rule["record"] for path in RULES for group in yaml.safe_load(path.read_text())["groups"]
                for rule in group["rules"] if "record" in rule}
    known = declared_metrics() | recorded
    for where, expr in dashboard_queries(_dashboard()):
        names = metric_names(expand(expr))
        assert names, where
        assert names <= known, (where, names - known)


# --- live: a real Prometheus scraping a real worker and trainer ----------------------------
DELAY_DAYS = 2.0
SPLIT_DAY = 16
TRAINER = dict(
    label_delay_days=DELAY_DAYS, trainer_interval_s=3600, trainer_new_frauds_trigger=100_000,
    trainer_holdout_days=4, trainer_gap_days=DELAY_DAYS, trainer_min_frauds=20, trainer_min_fit_frauds=10,
    trainer_diffusion_steps=200, trainer_xgb_estimators=60, trainer_publish_synthetic="true",
    trainer_synthetic_publish_cap=100,
    trainer_promote_margin=-1.0,  # promote the first challenger: the champion's metrics must appear
)
# Expressions that are rightly empty a few minutes after start; every other one must return
# data, so a typo in a label value (which still parses) fails the test too.
MAY_BE_EMPTY = {
    "avg_over_time(fraudstream:flagged_ratio:rate30m[1d] offset 30m)": "needs 30 minutes of history",
    "changes(max(fraudstream_trainer_champion_created_timestamp_seconds)[2m:]) > 0":
        "only within 2 minutes of a promotion",
}
MALFORMED = [(b"c-bad", b"{not json"), (b"c-bad", b'{"tx_id": "m1"}'), (b"c-bad", None)]


class Prometheus:
    """A real Prometheus server on a free loopback port, with its own temp config and TSDB."""

    def __init__(self, binary: Path, workdir: Path, targets: dict[str, list[int]]) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULES],
            "scrape_configs": [{"job_name": job, "static_configs": [
                {"targets": [f"127.0.0.1:{port}" for port in ports]}]}
                for job, ports in targets.items()],
        }
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), f"--config.file={path}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400 for a bad query: the body says why
            return json.loads(exc.read())

    def ready(self) -> bool:
        try:
            return self.api("targets")["status"] == "success"
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture(scope="module")
def stream_df():
    df = sim.simulate(sim.SimulationConfig(n_customers=500, n_terminals=1000, n_days=22, seed=5))
    start = df["ts"].min()
    cut = start - start % 86400 + SPLIT_DAY * 86400
    return df[df["ts"] < cut], df[df["ts"] >= cut]


@pytest.mark.kafka
@pytest.mark.slow
def test_every_dashboard_query_parses_and_finds_its_series_in_a_live_prometheus(
        settings, stream_df, tools, tmp_path):
    first, second = stream_df
    create_topics(settings)
    env = settings_env(settings, app_id=settings.app_id, **TRAINER)
    worker = WorkerProcess(env, tmp_path / "worker.log", "w1")
    trainer = TrainerProcess(env, tmp_path / "trainer.log")
    # the worker's two processes (scoring, label) are two targets of one job, as in compose
    prom = Prometheus(tools["prometheus"], tmp_path, {
        "fraudstream-worker": [worker.metrics_port, *worker.extra_ports],
        "fraudstream-trainer": [trainer.metrics_port]})
    procs = [worker, trainer]
    try:
        wait_for("prometheus answering", prom.ready, 60)
        wait_for("every target scraped and up", lambda: sorted(
            t["health"] for t in prom.api("targets")["data"]["activeTargets"]) == ["up"] * 3, 120, *procs)

        # Traffic with labels, a few dead letters, one trainer cycle that promotes a champion,
        # then more labelled traffic scored by that champion (its prequential AP).
        counts = produce(settings, first, DELAY_DAYS)
        produce_raw(settings, settings.topics.transactions, MALFORMED)
        wait_for("phase 1 labelled and read by the trainer", lambda: (trainer.metric(
            "fraudstream_trainer_examples_total", {"outcome": "kept"}) or 0) >= 0.9 * counts["labels"],
            300, *procs, every=2)
        done = cli(env, "retrain", "--reason", "dashboard test")
        assert done.returncode == 0, done.stderr
        wait_for("a finished cycle", lambda: trainer.metric("fraudstream_trainer_cycles_total"),
                 300, *procs, every=2)
        champion = wait_for("a champion", lambda: (v := model_version(worker)) != "online-v1" and v,
                            60, *procs)
        assert champion and champion != "none", trainer.log_tail()
        produce(settings, second, DELAY_DAYS)
        wait_for("the champion's prequential AP",
                 lambda: worker.metric("fraudstream_model_prequential_average_precision",
                                       {"role": "champion"}) is not None, 300, *procs, every=2)
        # Two more scrapes and rule evaluations after the last series appeared.
        time.sleep(3)

        problems = []
        for where, expr in dashboard_queries(_dashboard()):
            query = expand(expr)
            result = prom.api("query", query=query)
            if result["status"] != "success":
                problems.append(f"{where}: {query}\n    {result.get('error')}")
                continue
            if not result["data"]["result"] and expr not in MAY_BE_EMPTY:
                problems.append(f"{where}: no data for {query}")
            for name in sorted(metric_names(query)):
                series = prom.api("series", **{"match[]": name})
                if not series.get("data"):
                    problems.append(f"{where}: no series named {name}")
        rules = prom.api("rules")["data"]["groups"]
        for group in rules:
            for rule in group["rules"]:
                if rule["health"] != "ok":
                    problems.append(f"rule {rule['name']}: {rule['health']} {rule.get('lastError')}")
        assert sum(len(g["rules"]) for g in rules) > 20
        assert not problems, "\n".join(problems) + "\n--- prometheus\n" + prom.log_tail()
    finally:
        prom.stop()
        for p in procs:
            p.stop()
