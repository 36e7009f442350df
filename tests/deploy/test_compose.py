"""docker-compose.yml and deploy/Dockerfile, validated without a Docker engine.

The compose file goes through the Compose Specification's own validator (compose-go, the
library `docker compose` loads files with: its JSON schema, interpolation, merges of YAML
anchors, normalisation), and its normalised output is then checked against the project:
every service it depends on, image, build context, port, environment variable and mounted
path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudstream.stream.cli import build_parser
from fraudstream.stream.config import ENV_PREFIX, Settings, TopicNames, load_settings
from fraudstream.stream.kafka_local import KAFKA_VERSION

from deploy_helpers import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
FRAUDSTREAM_SERVICES = ("topics", "worker", "trainer", "trainer-gpu", "simulator")


def _validate(tools: dict[str, Path], path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(tools["compose-spec"]), "--format", "json", path.name],
                          cwd=path.parent, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def compose(tools) -> dict[str, Any]:
    """The compose model as `docker compose config` would normalise it."""
    proc = _validate(tools, COMPOSE)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("breakage", [
    ("    restart: unless-stopped\n", "    restart: unless-stopped\n    sclae: 3\n"),      # unknown key
    ("        condition: service_completed_successfully\n",
     "        condition: service_finished\n"),                                             # no such condition
    ('      - "9090:9090"\n', '      - "ninety:9090"\n'),                                  # bad port
], ids=["unknown-key", "bad-depends-on-condition", "bad-port"])
def test_the_validator_rejects_a_broken_compose_file(tools, tmp_path, breakage):
    old, new = breakage
    text = COMPOSE.read_text()
    assert old in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1))
    for sub in ("deploy",):  # relative build contexts and mounts resolve from the file's folder
        (tmp_path / sub).symlink_to(ROOT / sub)
    assert _validate(tools, broken).returncode != 0


def test_compose_file_passes_the_compose_specification(compose):
    assert set(compose["services"]) == {"kafka", "topics", "worker", "trainer", "trainer-gpu",
                                        "simulator", "prometheus", "grafana"}


def test_fraudstream_services_build_the_project_image(compose):
    args = set(re.findall(r"^ARG (\w+)", DOCKERFILE.read_text(), re.M))
    for name in FRAUDSTREAM_SERVICES:
        service = compose["services"][name]
        build = service["build"]
        assert Path(build["context"]) == ROOT, name
        assert (ROOT / build["dockerfile"]) == DOCKERFILE, name
        assert set(build.get("args", {})) <= args, (name, build.get("args"))
        assert service["image"].startswith("fraudstream:"), name
    assert compose["services"]["trainer-gpu"]["build"]["args"]["TORCH_VARIANT"] == "cuda"
    assert compose["services"]["trainer"]["build"]["args"]["TORCH_VARIANT"] == "cpu"


def test_third_party_images_are_pinned_to_the_versions_the_tests_run(compose, tools):
    images = {name: s["image"] for name, s in compose["services"].items() if name not in FRAUDSTREAM_SERVICES}
    for name, image in images.items():
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", (name, image)
    assert images["kafka"] == f"apache/kafka:{KAFKA_VERSION}"
    version = subprocess.run([str(tools["promtool"]), "--version"], capture_output=True, text=True).stdout
    promtool = re.search(r"version (\d+\.\d+\.\d+)", version).group(1)
    assert images["prometheus"] == f"prom/prometheus:v{promtool}"


def _fraudstream_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}


def _setting_exists(var: str) -> bool:
    name = var[len(ENV_PREFIX):].lower()
    if "__" in name:
        parent, _, child = name.partition("__")
        return parent == "topics" and child in TopicNames.model_fields
    return name in Settings.model_fields


def test_fraudstream_services_are_configured_only_by_real_settings(compose, monkeypatch):
    for name in FRAUDSTREAM_SERVICES:
        service = compose["services"][name]
        env = service.get("environment") or {}
        assert env and set(env) == set(_fraudstream_env(service)), (name, set(env) - set(_fraudstream_env(service)))
        for var in env:
            assert _setting_exists(var), f"{name}: {var} is not a field of stream/config.py Settings"
        # The values build a valid Settings object, and the command parses with it.
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            monkeypatch.delenv(key)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        settings = load_settings()
        args = build_parser(settings).parse_args(service["command"])
        assert args.command == service["command"][0], name
        assert settings.bootstrap_servers == ["kafka:19092"], name
        monkeypatch.undo()


def test_dependencies_name_real_services(compose):
    services = compose["services"]
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services) - {name}, name


def test_workers_reach_kafka_on_its_advertised_internal_listener(compose):
    kafka = compose["services"]["kafka"]["environment"]
    assert "PLAINTEXT://kafka:19092" in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert compose["services"]["kafka"]["healthcheck"]["test"]
    assert compose["services"]["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("worker", "trainer", "trainer-gpu", "simulator"):
        assert compose["services"][name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_ports_scale_and_match_the_metrics_settings(compose):
    services = compose["services"]
    published = [p["published"] for s in services.values() for p in s.get("ports", [])]
    assert len(published) == len(set(published)), "two services publish the same host port"
    fields = Settings.model_fields
    expected = {"worker": ("FRAUDSTREAM_METRICS_PORT", fields["metrics_port"].default),
                "trainer": ("FRAUDSTREAM_TRAINER_METRICS_PORT", fields["trainer_metrics_port"].default),
                "trainer-gpu": ("FRAUDSTREAM_TRAINER_METRICS_PORT", fields["trainer_metrics_port"].default)}
    for name, (var, port) in expected.items():
        service = services[name]
        assert "ports" not in service, f"{name} publishes a host port: --scale would clash"
        assert service["environment"][var] == str(port) and service["expose"] == [str(port)]
        if "healthcheck" in service:
            assert f":{port}/metrics" in " ".join(service["healthcheck"]["test"])
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    ports = {job["job_name"]: job["dns_sd_configs"][0]["port"] for job in prometheus["scrape_configs"]
             if "dns_sd_configs" in job}
    assert ports == {"fraudstream-worker": expected["worker"][1], "fraudstream-trainer": expected["trainer"][1]}
    assert {p["target"] for p in services["grafana"]["ports"]} == {3000}
    assert {p["target"] for p in services["prometheus"]["ports"]} == {9090}


def test_gpu_trainer_reserves_a_gpu_only_in_its_profile(compose):
    services = compose["services"]
    gpu = services["trainer-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert gpu["environment"]["FRAUDSTREAM_TRAINER_DEVICE"] == "cuda"
    assert services["simulator"]["profiles"] == ["demo"]
    for name, service in services.items():
        if name != "trainer-gpu":
            assert "deploy" not in service, name
    assert not any("profiles" in services[n] for n in ("kafka", "worker", "trainer", "prometheus", "grafana"))


def test_mounts_exist_and_the_registry_is_one_named_volume(compose):
    volumes = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            if mount["type"] == "bind":
                source = Path(mount["source"])
                assert source.exists() and ROOT in source.parents, (name, mount)
                assert mount.get("read_only"), f"{name}: bind mounts of the repository are read-only"
            else:
                assert mount["type"] == "volume" and mount["source"] in volumes, (name, mount)
    for name in ("worker", "trainer", "trainer-gpu"):
        service = compose["services"][name]
        registry = service["environment"]["FRAUDSTREAM_MODEL_REGISTRY"]
        assert {"source": "registry", "target": registry} in [
            {"source": m["source"], "target": m["target"]} for m in service["volumes"]], name
    prometheus = compose["services"]["prometheus"]
    config = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    mount = next(m for m in prometheus["volumes"] if m["target"] == "/etc/prometheus")
    assert (Path(mount["source"]) / Path(config.split("=", 1)[1]).relative_to("/etc/prometheus")).is_file()
    grafana = {m["target"]: Path(m["source"]) for m in compose["services"]["grafana"]["volumes"] if m["type"] == "bind"}
    assert (grafana["/etc/grafana/provisioning"] / "datasources").is_dir()
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (grafana["/etc/grafana/dashboards"] / Path(home).name).is_file()


# --- the Dockerfile ---------------------------------------------------------------------
def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last match wins)."""
    ignored = False
    for pattern in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\[", "[").replace(r"\]", "]")  # character classes as in Go's filepath.Match
        if re.fullmatch(regex, path) \
                or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored


def test_dockerfile_is_slim_non_root_and_layered_for_code_changes():
    steps = _instructions()
    kinds = [k for k, _ in steps]
    assert re.match(r"python:\$\{PYTHON_VERSION\}-slim", dict(steps)["FROM"])
    users = [arg for k, arg in steps if k == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert kinds.index("USER") > max(i for i, (k, _) in enumerate(steps) if k == "RUN")
    copies = [(i, arg.split()) for i, (k, arg) in enumerate(steps) if k == "COPY"]
    for _, parts in copies:
        for source in parts[:-1]:
            assert (ROOT / source).exists(), source
            assert not _ignored(source), f"{source} is excluded by .dockerignore"
    first_code = min(i for i, parts in copies if parts[0] in {"stream", "models"})
    pyproject = next(i for i, parts in copies if parts[0] == "pyproject.toml")
    installs = [i for i, (k, arg) in enumerate(steps) if k == "RUN" and "pip install" in arg]
    torch = next(i for i in installs if "TORCH_VARIANT" in steps[i][1])
    deps = next(i for i in installs if "requirements" in steps[i][1])
    assert pyproject < torch < deps < first_code, "dependencies must be installed before the code is copied"
    assert "--no-deps" in steps[max(installs)][1] and max(installs) > first_code
    assert any(k == "ARG" and arg.startswith("TORCH_VARIANT=cpu") for k, arg in steps)
    assert dict((k, a) for k, a in steps if k == "ENTRYPOINT")["ENTRYPOINT"] == '["fraudstream"]'


def test_dockerignore_keeps_the_build_context_small():
    for path in (".venv", ".git", "var", "tests", "dev2-data", "bench-ca3e33-lat-data"):
        assert _ignored(path), path
    for path in ("pyproject.toml", "README.md", "stream", "stream/cli.py", "models"):
        assert not _ignored(path), path
    assert _ignored("stream/__pycache__") and _ignored("models/x.pyc")



def test_dockerfile_reads_its_dependencies_from_pyproject():
    """Run the Dockerfile's own Python one-liners on the real pyproject.toml."""
    import tomllib

    snippets = re.findall(r"python -c '([^']+)'", DOCKERFILE.read_text())
    assert len(snippets) == 2
    outputs = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.split("\n") for code in snippets]
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req, requirements = outputs[0][0], [line for line in outputs[1] if line]
    assert torch_req in deps and torch_req.startswith("torch")
    assert requirements == deps
