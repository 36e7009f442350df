"""docker-compose.yml and deploy/Dockerfile, validated without a Docker engine.

The compose file goes through the Compose Specification's own validator (compose-go, the
library `docker compose` loads files with: its JSON schema, interpolation, merges of YAML
anchors, normalisation), and its normalised output is then checked against the project:
every service it depends on, image, build context, port, environment variable and mounted
path; and the locked-down defaults (loopback ports, no default passwords, read-only
containers without capabilities, one checkpoint and one state folder per worker replica, on
named volumes) and the `secure` profile, whose broker set-up runs here through the Kafka
image's own code on the real broker, and whose services refuse to start without their
passwords (the plain stack needs none of them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudstream.stream.cli import build_parser
from fraudstream.stream.config import ENV_PREFIX, Settings, TopicNames, load_settings
from fraudstream.stream.kafka_local import KAFKA_VERSION, ROLES

from deploy_helpers import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
ACLS = "kafka-secure-acls"  # runs deploy/secure/grant-acls.py, not the fraudstream CLI
SECURE_SERVICES = ("topics-secure", ACLS, "worker-secure", "trainer-secure")
FRAUDSTREAM_SERVICES = ("topics", "worker", "trainer", "trainer-gpu", "simulator", *SECURE_SERVICES)
WORKERS = ("worker", "worker-secure")
TRAINERS = ("trainer", "trainer-gpu", "trainer-secure")
# The variables compose must refuse to start without (no default: passwords); the
# validator's model is built with a stand-in value for each (see _testable_text).
REQUIRED = re.compile(r"\$\{(\w+):\?[^}]+\}")
REQUIRED_VARIABLES = {"GF_ADMIN_PASSWORD"}  # Grafana runs in the plain stack
# The secure profile's SCRAM passwords: no default either, but `${VAR:-}` (empty when unset),
# since compose interpolates every profile's variables before it applies profiles, and a
# required one would stop the plain stack too. The secure services refuse an empty one at
# start instead (kafka-init.sh; deploy/secure/require-password.sh, the clients' entrypoint).
KAFKA_PASSWORDS = {user: f"FRAUDSTREAM_KAFKA_{user.upper()}_PASSWORD" for user in ("admin", *ROLES)}
KAFKA_PASSWORD = re.compile(r"\$\{(FRAUDSTREAM_KAFKA_\w+_PASSWORD)\b([^}]*)\}")
# The secure services' entrypoint wrapper: it refuses to start without the service's password.
REQUIRE_PASSWORD = ROOT / "deploy" / "secure" / "require-password.sh"
# The secure profile's services and the SCRAM principal each one logs in as.
PRINCIPALS = {"topics-secure": "admin", ACLS: "admin", "worker-secure": "worker", "trainer-secure": "trainer"}


def stand_in(var: str) -> str:
    """The test's value of a required variable (valid for kafka-init.sh: 12+ plain characters)."""
    return f"stand-in-for-{var.lower()}"


STAND_IN_PASSWORD = stand_in("GF_ADMIN_PASSWORD")


def _validate(tools: dict[str, Path], path: Path) -> subprocess.CompletedProcess:
    # Relative paths resolve from the validator's working directory (the repository), as
    # `docker compose` resolves them from the compose file's folder. Its model is
    # interpolated with no environment at all (compose-go's LoadModel): every
    # ${VAR:-default} takes its default, which is what a user gets who sets nothing.
    return subprocess.run([str(tools["compose-spec"]), "--format", "json", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})


def _testable_text(keep: str | None = None, unset: tuple[str, ...] = ()) -> str:
    """The compose file with a stand-in for every required variable but ``keep``, which stays
    required, and for every Kafka password but those in ``unset``, which stay as a user who
    sets nothing gets them: empty."""
    text = COMPOSE.read_text()
    found = REQUIRED.findall(text)
    assert sorted(found) == sorted(REQUIRED_VARIABLES), found
    # Each once, with an empty default: services take a Kafka password through a YAML anchor
    # (x-kafka-*-password); no default password, and nothing compose would require.
    passwords = KAFKA_PASSWORD.findall(text)
    assert sorted(passwords) == sorted((var, ":-") for var in KAFKA_PASSWORDS.values()), passwords
    text = REQUIRED.sub(lambda m: m.group(0) if m.group(1) == keep
                        else "${%s:-%s}" % (m.group(1), stand_in(m.group(1))), text)
    return KAFKA_PASSWORD.sub(lambda m: m.group(0) if m.group(1) in unset
                              else "${%s:-%s}" % (m.group(1), stand_in(m.group(1))), text)


@pytest.fixture(scope="module")
def compose(tools, tmp_path_factory) -> dict[str, Any]:
    """The compose model as `docker compose config` would normalise it."""
    path = tmp_path_factory.mktemp("compose") / "docker-compose.yml"
    path.write_text(_testable_text())
    proc = _validate(tools, path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_compose_refuses_to_start_without_a_grafana_admin_password(tools):
    """The file as it is, no environment: compose stops at GF_ADMIN_PASSWORD, and only there."""
    proc = _validate(tools, COMPOSE)
    assert proc.returncode != 0
    missing = set(re.findall(r"required variable (\w+) is missing a value", proc.stderr))
    assert missing == {"GF_ADMIN_PASSWORD"}, proc.stderr


def test_the_plain_stack_needs_only_the_grafana_password(tools, tmp_path):
    """GF_ADMIN_PASSWORD set, no Kafka password: compose loads the file (`docker compose up`
    works); the secure services get empty passwords, which they refuse at start (below)."""
    path = tmp_path / "docker-compose.yml"
    path.write_text(_testable_text(unset=tuple(KAFKA_PASSWORDS.values())))
    proc = _validate(tools, path)
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]
    for var in KAFKA_PASSWORDS.values():
        assert services["kafka-secure-init"]["environment"][var] == "", var
    for name in SECURE_SERVICES:
        assert services[name]["environment"]["FRAUDSTREAM_SASL_PASSWORD"] == "", name
    for name, service in services.items():  # nothing outside the secure profile sees them
        if "secure" not in service.get("profiles", []):
            env = service.get("environment") or {}
            assert not {"FRAUDSTREAM_SASL_PASSWORD", *KAFKA_PASSWORDS.values()} & set(env), name


@pytest.mark.parametrize("breakage", [
    ("    restart: unless-stopped\n", "    restart: unless-stopped\n    sclae: 3\n"),      # unknown key
    ("        condition: service_completed_successfully\n",
     "        condition: service_finished\n"),                                             # no such condition
    ('      - "${FRAUDSTREAM_BIND_HOST:-127.0.0.1}:9090:9090"\n',
     '      - "${FRAUDSTREAM_BIND_HOST:-127.0.0.1}:ninety:9090"\n'),                       # bad port
    ("  read_only: true\n", "  read_only: sure\n"),                                         # not a boolean
], ids=["unknown-key", "bad-depends-on-condition", "bad-port", "bad-read-only"])
def test_the_validator_rejects_a_broken_compose_file(tools, tmp_path, breakage):
    old, new = breakage
    text = _testable_text()
    assert old in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1))
    assert _validate(tools, broken).returncode != 0


def test_compose_file_passes_the_compose_specification(compose):
    assert set(compose["services"]) == {"kafka", "topics", "worker", "trainer", "trainer-gpu",
                                        "simulator", "prometheus", "grafana",
                                        "kafka-secure-init", "kafka-secure", *SECURE_SERVICES}
    assert set(PRINCIPALS) == set(SECURE_SERVICES)


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


def _wrapped(service: dict[str, Any]) -> tuple[str | None, list[str]]:
    """A service's entrypoint as (the password variable deploy/secure/require-password.sh
    checks first, None without it; the entrypoint that runs then)."""
    entrypoint = list(service.get("entrypoint") or [])
    mounts = {m["target"]: m for m in service.get("volumes", [])}
    if entrypoint[:1] == ["sh"] and len(entrypoint) > 3 and entrypoint[1] in mounts \
            and Path(mounts[entrypoint[1]]["source"]) == REQUIRE_PASSWORD:
        assert mounts[entrypoint[1]].get("read_only"), entrypoint
        return entrypoint[2], entrypoint[3:]
    return None, entrypoint


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
        if name in SECURE_SERVICES:  # no default password: the stand-in for its required variable
            assert env["FRAUDSTREAM_SASL_PASSWORD"] == stand_in(KAFKA_PASSWORDS[PRINCIPALS[name]]), name
        settings = load_settings()
        if name == ACLS:
            assert "command" not in service and _wrapped(service)[1][0] == "python", name
        else:
            args = build_parser(settings).parse_args(service["command"])
            assert args.command == service["command"][0], name
        expected = ["kafka-secure:19093"] if name in SECURE_SERVICES else ["kafka:19092"]
        assert settings.bootstrap_servers == expected, name
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
    assert compose["services"]["topics-secure"]["depends_on"]["kafka-secure"]["condition"] == "service_healthy"
    assert compose["services"][ACLS]["depends_on"]["kafka-secure"]["condition"] == "service_healthy"
    for name in ("worker-secure", "trainer-secure"):  # topics made and ACLs granted first
        assert compose["services"][name]["depends_on"] == {
            "topics-secure": {"condition": "service_completed_successfully", "required": True},
            ACLS: {"condition": "service_completed_successfully", "required": True}}


def test_ports_scale_and_match_the_metrics_settings(compose):
    services = compose["services"]
    published = [p["published"] for s in services.values() for p in s.get("ports", [])]
    assert len(published) == len(set(published)), "two services publish the same host port"
    fields = Settings.model_fields
    expected = {**{name: ("FRAUDSTREAM_METRICS_PORT", fields["metrics_port"].default) for name in WORKERS},
                **{name: ("FRAUDSTREAM_TRAINER_METRICS_PORT", fields["trainer_metrics_port"].default)
                   for name in TRAINERS}}
    label_port = fields["label_metrics_port"].default  # a worker's label process (its child)
    for name, (var, port) in expected.items():
        service = services[name]
        assert "ports" not in service, f"{name} publishes a host port: --scale would clash"
        ports = [port, label_port] if name in WORKERS else [port]
        assert service["environment"][var] == str(port)
        assert service["expose"] == [str(p) for p in ports]
        if name in WORKERS:
            assert service["environment"]["FRAUDSTREAM_LABEL_METRICS_PORT"] == str(label_port)
        if "healthcheck" in service:
            assert f":{port}/metrics" in " ".join(service["healthcheck"]["test"])
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job["dns_sd_configs"] for job in prometheus["scrape_configs"]
            if "dns_sd_configs" in job}
    assert {name: [sd["port"] for sd in sds] for name, sds in jobs.items()} == {
        "fraudstream-worker": [expected["worker"][1], label_port],
        "fraudstream-trainer": [expected["trainer"][1]]}
    for sd in jobs["fraudstream-worker"]:
        assert sd["names"] == list(WORKERS)  # every replica of every worker service
    assert jobs["fraudstream-trainer"][0]["names"] == list(TRAINERS)
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
    for name in ("kafka-secure-init", "kafka-secure", *SECURE_SERVICES):
        assert services[name]["profiles"] == ["secure"], name


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
    for name in (*WORKERS, *TRAINERS):
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


# --- locked down by default ------------------------------------------------------------
# What each image writes outside its volumes, so a read-only root filesystem needs a tmpfs:
#   our image (uid 10001): /tmp (trainer cycles) and its working directory; the workers also
#     FRAUDSTREAM_STATE_DIR, on a named volume (test_workers_keep_their_state_...);
#   apache/kafka (appuser): /opt/kafka/config (generated at every start by the image's
#     KafkaDockerWrapper), /opt/kafka/logs (log4j files, GC log), /tmp (JVM perf data and the
#     native compression libraries it unpacks and loads);
#   prom/prometheus (nobody): only its data volume /prometheus;
#   grafana/grafana (472): its data volume /var/lib/grafana and /tmp; logs go to the console.
def _writable_paths_of(image: str) -> set[str]:
    workdirs = [arg for kind, arg in _instructions() if kind == "WORKDIR"]
    by_image = {"fraudstream:": {"/tmp", workdirs[-1]},
                "apache/kafka:": {"/opt/kafka/config", "/opt/kafka/logs", "/tmp", "/var/lib/kafka/data"},
                "prom/prometheus:": {"/prometheus"},
                "grafana/grafana:": {"/var/lib/grafana", "/tmp"}}
    (paths,) = [paths for prefix, paths in by_image.items() if image.startswith(prefix)]
    return paths


def test_every_container_runs_read_only_without_capabilities(compose):
    for name, service in compose["services"].items():
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"] and not service.get("cap_add"), name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert not service.get("privileged") and "network_mode" not in service and "pid" not in service, name
        assert service.get("user") in (None, ""), f"{name}: the images' own non-root users"
        tmpfs = {entry.split(":", 1)[0] for entry in service.get("tmpfs", [])}
        rw_volumes = {m["target"] for m in service.get("volumes", []) if not m.get("read_only")}
        needed = _writable_paths_of(service["image"])
        assert needed <= tmpfs | rw_volumes, (name, needed - tmpfs - rw_volumes)
        assert not tmpfs & rw_volumes, name
    for name in FRAUDSTREAM_SERVICES:  # a tmpfs owned by the image's user, not world-writable
        home = next(e for e in compose["services"][name]["tmpfs"] if e.startswith("/home/"))
        assert "uid=10001" in home and "mode=0700" in home, (name, home)
    assert compose["services"]["grafana"]["environment"]["GF_LOG_MODE"] == "console"


def test_workers_keep_their_state_on_a_named_volume_of_their_own(compose):
    """FRAUDSTREAM_STATE_DIR (default ./var/state, in the container's tmpfs home) is on a
    writable named volume: the RocksDB tables and the saved terminal replica outlive the
    container, so a restarted worker catches up instead of restoring every table from Kafka."""
    services = compose["services"]
    declared = set(compose.get("volumes", {}))
    runs = [arg for kind, arg in _instructions() if kind == "RUN"]
    volumes = {}
    for name in WORKERS:
        service = services[name]
        state = Path(service["environment"]["FRAUDSTREAM_STATE_DIR"])
        assert state.is_absolute(), (name, state)  # not relative to the working directory
        under = [m for m in service["volumes"] if Path(m["target"]) == state or Path(m["target"]) in state.parents]
        assert under, f"{name}: FRAUDSTREAM_STATE_DIR={state} is on no volume"
        mount = max(under, key=lambda m: len(Path(m["target"]).parts))  # the one it is written to
        assert mount["type"] == "volume" and mount["source"] in declared, (name, mount)
        assert not mount.get("read_only"), (name, mount)
        tmpfs = [Path(entry.split(":", 1)[0]) for entry in service.get("tmpfs", [])]
        assert not [p for p in tmpfs if p == state or state in p.parents], (name, tmpfs)  # nothing hides it
        volumes[name] = mount["source"]
        # The image makes the mount point, owned by its user: a new named volume takes its owner.
        target = mount["target"]
        owners = "|".join(re.escape(str(p)) for p in (Path(target), *Path(target).parents) if p != Path("/"))
        assert any(re.search(rf"mkdir -p [^&]*{re.escape(target)}(\s|$)", run)
                   and re.search(rf"chown -R fraudstream:fraudstream ({owners})(\s|$)", run) for run in runs), target
    # Not the registry (every replica and the trainer share it), and a volume per worker
    # service: the plaintext and the secure workers' tables come from different brokers.
    assert "registry" not in volumes.values()
    assert len(set(volumes.values())) == len(volumes), volumes
    for name, service in services.items():
        if name not in WORKERS:
            assert not {m.get("source") for m in service.get("volumes", [])} & set(volumes.values()), name


def test_host_ports_are_published_on_loopback_unless_the_user_opts_in(compose):
    published = {name: s["ports"] for name, s in compose["services"].items() if s.get("ports")}
    assert set(published) == {"kafka", "kafka-secure", "prometheus", "grafana"}
    for name, ports in published.items():
        for port in ports:
            assert port["host_ip"] == "127.0.0.1", (name, port)
    # The opt-in: one variable for every published port, nothing else written there.
    raw = yaml.safe_load(COMPOSE.read_text().replace("${", "<").replace("}", ">"))
    for name in published:
        for entry in raw["services"][name]["ports"]:
            assert entry.startswith("<FRAUDSTREAM_BIND_HOST:-127.0.0.1>:"), (name, entry)


def test_grafana_has_no_default_password_and_no_anonymous_access(compose):
    env = compose["services"]["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == STAND_IN_PASSWORD  # only ever from GF_ADMIN_PASSWORD
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert "GF_SECURITY_ADMIN_USER" not in env or env["GF_SECURITY_ADMIN_USER"] != env["GF_SECURITY_ADMIN_PASSWORD"]
    text = COMPOSE.read_text()
    assert "GRAFANA_ADMIN_PASSWORD" not in text and ":-admin}" not in text


def test_prometheus_has_neither_lifecycle_nor_admin_api(compose):
    args = compose["services"]["prometheus"]["command"]
    assert not [a for a in args if a.startswith(("--web.enable-lifecycle", "--web.enable-admin-api"))]


def test_metrics_listen_on_all_interfaces_only_inside_containers(compose):
    assert Settings.model_fields["metrics_bind"].default == "127.0.0.1"  # local runs, demo, tests
    for name in (*WORKERS, *TRAINERS):
        assert compose["services"][name]["environment"]["FRAUDSTREAM_METRICS_BIND"] == "0.0.0.0", name
    for name in ("topics", "topics-secure", "simulator"):  # no metrics server there
        assert "FRAUDSTREAM_METRICS_BIND" not in compose["services"][name]["environment"], name


def test_each_worker_replica_gets_its_own_checkpoint_and_state_folder(compose, tmp_path, monkeypatch):
    """The workers' entrypoint, run as compose runs it on --scale replicas sharing a volume."""
    (copied,) = [arg.split() for kind, arg in _instructions()
                 if kind == "COPY" and arg.split()[0] == "deploy/worker-entrypoint.sh"]
    script = ROOT / copied[0]
    for name in WORKERS:
        service = compose["services"][name]
        assert _wrapped(service)[1] == [Path(copied[1]).name], name  # on PATH in the image
        assert "FRAUDSTREAM_WORKER_ID" not in service["environment"], name
    for name in set(FRAUDSTREAM_SERVICES) - set(WORKERS) - {ACLS}:
        assert _wrapped(compose["services"][name])[1] in ([], ["fraudstream"]), name  # the image's own
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "fraudstream").write_text('#!/bin/sh\necho "$FRAUDSTREAM_WORKER_ID $*" > "$OUT"\n'
                                      'while [ ! -e "$STOP" ]; do sleep 0.05; done\n')
    (stub / "fraudstream").chmod(0o755)
    registry = tmp_path / "registry"
    env = {"PATH": f"{stub}:/usr/bin:/bin", "FRAUDSTREAM_MODEL_REGISTRY": str(registry)}

    def start(i: int, **extra: str) -> subprocess.Popen:
        return subprocess.Popen(["/bin/sh", str(script), "worker", "--loglevel", "info"],
                                env={**env, "OUT": str(tmp_path / f"out{i}"),
                                     "STOP": str(tmp_path / f"stop{i}"), **extra})

    def worker_id(i: int) -> str:
        out = tmp_path / f"out{i}"
        for _ in range(200):
            if out.exists() and out.read_text().strip():
                text = out.read_text().split()
                assert text[1:] == ["worker", "--loglevel", "info"]
                return text[0]
            time.sleep(0.05)
        raise AssertionError(f"replica {i} never started")

    procs = [start(i) for i in range(3)]
    try:
        ids = [worker_id(i) for i in range(3)]
        assert sorted(ids) == ["compose-worker-1", "compose-worker-2", "compose-worker-3"]
        # A replica that dies frees its name; its replacement takes it and starts warm.
        gone = ids.index("compose-worker-2")
        (tmp_path / f"stop{gone}").touch()
        assert procs[gone].wait(timeout=10) == 0
        procs.append(start(3))
        assert worker_id(3) == "compose-worker-2"
        procs.append(start(4, FRAUDSTREAM_WORKER_ID="pinned"))  # an explicit id wins
        assert worker_id(4) == "pinned"
        # The same id names each replica's state folder: live replicas never share one.
        live = [ids[i] for i in range(3) if i != gone] + [worker_id(3)]
        for name in WORKERS:
            env = compose["services"][name]["environment"]
            folders = {_settings({**env, "FRAUDSTREAM_WORKER_ID": wid}, monkeypatch).worker_state_dir for wid in live}
            assert len(folders) == len(live), (name, folders)
            assert all(Path(env["FRAUDSTREAM_STATE_DIR"]) in f.parents for f in folders), (name, folders)
    finally:
        for i in range(len(procs)):
            (tmp_path / f"stop{i}").touch()
        for proc in procs:
            proc.wait(timeout=10)
    # Only hidden lock files: the trainer's glob of checkpoints (*.pkl) never sees them.
    assert {p.name for p in (registry / "online").iterdir()} == {
        f".compose-worker-{n}.lock" for n in (1, 2, 3)}


# --- the `secure` profile ---------------------------------------------------------------
def _listeners(value: str) -> dict[str, tuple[str, int]]:
    out = {}
    for entry in value.split(","):
        name, _, address = entry.partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def test_secure_profile_talks_to_kafka_only_over_sasl_ssl(compose):
    services = compose["services"]
    secure = {name for name, s in services.items() if "secure" in s.get("profiles", [])}
    assert secure == {"kafka-secure-init", "kafka-secure", *SECURE_SERVICES}
    kafka = services["kafka-secure"]["environment"]
    protocols = dict(item.split(":") for item in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = _listeners(kafka["KAFKA_LISTENERS"])
    advertised = _listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])
    assert set(listeners) == set(protocols) and set(advertised) <= set(listeners)
    for name, (host, _) in listeners.items():
        # Anything another container or the host can reach is SASL_SSL; the controller and
        # inter-broker listeners are bound to the broker container's own loopback.
        assert protocols[name] == "SASL_SSL" or host == "127.0.0.1", (name, host, protocols[name])
    for name in (kafka["KAFKA_CONTROLLER_LISTENER_NAMES"], kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]):
        assert listeners[name][0] == "127.0.0.1" and advertised.get(name, ("127.0.0.1",))[0] == "127.0.0.1"
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith("1@127.0.0.1:")
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    # The image runs its own SSL/SASL set-up when a listener *name* contains "SSL://" or
    # "SASL_": names here never do, the keystore comes from kafka-secure-init instead.
    assert "SSL://" not in kafka["KAFKA_ADVERTISED_LISTENERS"] and "SASL_" not in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["CLUSTER_ID"] == services["kafka-secure-init"]["environment"]["CLUSTER_ID"]
    init_mounts = {m["target"]: m["source"] for m in services["kafka-secure-init"]["volumes"]}
    broker_mounts = {m["target"]: m for m in services["kafka-secure"]["volumes"]}
    for target in ("/etc/kafka/secrets", "/mnt/shared/config", "/var/lib/kafka/data"):
        assert broker_mounts[target]["source"] == init_mounts[target], target
    assert broker_mounts["/etc/kafka/secrets"].get("read_only") and broker_mounts["/mnt/shared/config"].get("read_only")
    assert services["kafka-secure"]["depends_on"]["kafka-secure-init"]["condition"] == "service_completed_successfully"
    for var in KAFKA_PASSWORDS.values():  # no default: the stand-in for a required variable
        assert services["kafka-secure-init"]["environment"][var] == stand_in(var), var
    assert "dns:kafka-secure" in services["kafka-secure-init"]["environment"]["KAFKA_CERT_SAN"].split(",")

    for name in SECURE_SERVICES:
        env = services[name]["environment"]
        assert env["FRAUDSTREAM_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["FRAUDSTREAM_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        host, port = env["FRAUDSTREAM_BROKER_URL"].removeprefix("kafka://").rsplit(":", 1)
        (listener,) = [n for n, (h, p) in advertised.items() if (h, p) == (host, int(port))]
        assert protocols[listener] == "SASL_SSL" and listeners[listener][0] == "", name
        # The CA certificate from the init's volume, read-only (its private files are 0600).
        mount = next(m for m in services[name]["volumes"] if Path(env["FRAUDSTREAM_SSL_CAFILE"]).parent
                     == Path(m["target"]))
        assert mount["source"] == init_mounts["/etc/kafka/secrets"] and mount.get("read_only"), name
        assert env["FRAUDSTREAM_SASL_USERNAME"] == PRINCIPALS[name], name
    # The plaintext stack and the secure one never lean on each other.
    for name, service in services.items():
        deps = set(service.get("depends_on", {}))
        assert deps <= secure | {"prometheus"} if name in secure else not deps & secure, (name, deps)
    for name in set(FRAUDSTREAM_SERVICES) - set(SECURE_SERVICES):
        assert services[name]["environment"]["FRAUDSTREAM_BROKER_URL"] == "kafka://kafka:19092", name


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_each_secure_service_logs_in_as_its_own_principal_under_the_authorizer(compose):
    """One SCRAM principal per role with its own required password; the broker authorizes
    every request as `fraudstream kafka start --secure` does (stream/kafka_config.py)."""
    from fraudstream.stream.kafka_config import SECURE_LISTENERS

    services = compose["services"]
    init = services["kafka-secure-init"]["environment"]
    assert {k for k in init if k.startswith("FRAUDSTREAM_")} == set(KAFKA_PASSWORDS.values())
    for name, user in PRINCIPALS.items():
        env = services[name]["environment"]
        assert env["FRAUDSTREAM_SASL_USERNAME"] == user, name
        # Its own variable, the one kafka-init.sh makes that user with.
        assert env["FRAUDSTREAM_SASL_PASSWORD"] == init[KAFKA_PASSWORDS[user]] == stand_in(KAFKA_PASSWORDS[user]), name
    assert {PRINCIPALS["worker-secure"], PRINCIPALS["trainer-secure"]} == set(ROLES)
    assert len({stand_in(v) for v in KAFKA_PASSWORDS.values()}) == len(KAFKA_PASSWORDS)
    # kafka-secure-acls computes role_acls from the same settings as the workers: the same
    # topic names and app id, only the login differs.
    login = {"FRAUDSTREAM_SASL_USERNAME", "FRAUDSTREAM_SASL_PASSWORD"}
    shared = {k: v for k, v in services[ACLS]["environment"].items() if k not in login}
    for name in ("worker-secure", "trainer-secure", "topics-secure"):
        env = services[name]["environment"]
        assert {k: env[k] for k in shared} == shared, name
        topic_vars = {k for k in env if k.startswith(f"{ENV_PREFIX}TOPICS__") or k == f"{ENV_PREFIX}APP_ID"}
        assert topic_vars <= set(shared), name
    mounts = {m["target"]: m for m in services[ACLS]["volumes"]}
    script = mounts[_wrapped(services[ACLS])[1][1]]
    assert Path(script["source"]) == ROOT / "deploy/secure/grant-acls.py" and script.get("read_only")
    # Each starts through require-password.sh with its own password's compose variable.
    for name, user in PRINCIPALS.items():
        assert _wrapped(services[name])[0] == KAFKA_PASSWORDS[user], name

    kafka = services["kafka-secure"]["environment"]
    local = _properties(SECURE_LISTENERS)
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"] == local["authorizer.class.name"]
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == local["allow.everyone.if.no.acl.found"] == "false"
    supers = kafka["KAFKA_SUPER_USERS"].split(";")
    assert local["super.users"] in supers and set(supers) == {"User:admin", "User:broker"}
    assert not {f"User:{role}" for role in ROLES} & set(supers)
    # No listener lets an unauthenticated client in (it would be User:ANONYMOUS).
    protocols = dict(item.split(":") for item in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert all(p.startswith("SASL_") for p in protocols.values()), protocols
    health = " ".join(services["kafka-secure"]["healthcheck"]["test"])
    assert "--command-config /mnt/shared/config/internal-client.properties" in health


# A stand-in for the image's kafka-storage.sh: records its arguments, writes meta.properties.
RECORDING_STORAGE_TOOL = ('#!/bin/sh\nprintf "%s\\n" "$@" > "$KAFKA_INIT_DATA_DIR/format.args"\n'
                          'touch "$KAFKA_INIT_DATA_DIR/meta.properties"\n')


def _passwords(**overrides: str) -> dict[str, str]:
    """kafka-init.sh's password variables: the compose stand-ins, ``overrides`` (var=value) first."""
    return {**{var: stand_in(var) for var in KAFKA_PASSWORDS.values()}, **overrides}


def _run_init(tmp_path: Path, passwords: dict[str, str], storage_tool: str = RECORDING_STORAGE_TOOL,
              **extra: str) -> subprocess.CompletedProcess:
    kafka_home = tmp_path / "kafka"
    (kafka_home / "bin").mkdir(parents=True, exist_ok=True)
    storage = kafka_home / "bin" / "kafka-storage.sh"
    storage.write_text(storage_tool)
    storage.chmod(0o755)
    dirs = {key: tmp_path / key for key in ("secrets", "config", "data")}
    for path in dirs.values():
        path.mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "KAFKA_HOME": str(kafka_home), "CLUSTER_ID": "Vq6mIbQzQhGt1Yk5xtXfPw",
           "KAFKA_INIT_SECRETS_DIR": str(dirs["secrets"]), "KAFKA_INIT_CONFIG_DIR": str(dirs["config"]),
           "KAFKA_INIT_DATA_DIR": str(dirs["data"]), **passwords,
           "KAFKA_CERT_SAN": "dns:kafka-secure,dns:localhost,ip:127.0.0.1", **extra}
    return subprocess.run(["bash", str(ROOT / "deploy/secure/kafka-init.sh")], env=env,
                          capture_output=True, text=True, timeout=300)


def _handshake(server_pem: tuple[Path, Path], cafile: Path, hostname: str) -> None:
    import socket
    import ssl
    import threading

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*server_pem)
    client_ctx = ssl.create_default_context(cafile=str(cafile))  # as stream/app.py builds it
    a, b = socket.socketpair()
    errors: list[Exception] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname=hostname) as tls:
            tls.sendall(b"x")
    finally:
        thread.join(timeout=10)


def test_kafka_secure_init_makes_the_certificates_and_the_scram_users_once(tmp_path):
    """deploy/secure/kafka-init.sh with the JDK's keytool, the image's storage tool stubbed."""
    for var in KAFKA_PASSWORDS.values():  # each password is required, and checked
        refused = _run_init(tmp_path / f"empty-{var}", _passwords(**{var: ""}))
        assert refused.returncode != 0 and f"set {var}" in refused.stderr, refused.stderr
        assert not (tmp_path / f"empty-{var}" / "secrets" / "ca.pem").exists()
        bad = _run_init(tmp_path / f"bad-{var}", _passwords(**{var: "has,a,comma-and-more"}))
        assert bad.returncode != 0 and var in bad.stderr, bad.stderr

    proc = _run_init(tmp_path, _passwords())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    secrets, config, data = tmp_path / "secrets", tmp_path / "config", tmp_path / "data"
    assert sorted(p.name for p in secrets.iterdir()) == ["ca.pem", "kafka.keystore.p12"]  # no CA key
    assert (secrets / "ca.pem").stat().st_mode & 0o777 == 0o644
    assert (secrets / "kafka.keystore.p12").stat().st_mode & 0o777 == 0o600
    for name in ("server.properties", "internal-client.properties"):
        assert (config / name).stat().st_mode & 0o777 == 0o600, name
    props = _properties((config / "server.properties").read_text())
    assert props["ssl.keystore.location"] == str(secrets / "kafka.keystore.p12")
    assert props["ssl.keystore.password"] == props["ssl.key.password"] and len(props["ssl.keystore.password"]) >= 24
    for listener in ("secure", "external"):
        assert "ScramLoginModule required" in props[f"listener.name.{listener}.scram-sha-512.sasl.jaas.config"]
    # The broker's own login on its loopback listeners: PLAIN, user `broker`, a random password
    # shared only with internal-client.properties (the healthcheck's).
    internal = _properties((config / "internal-client.properties").read_text())
    password = re.search(r'password="(\w{24,})"', internal["sasl.jaas.config"]).group(1)
    for listener in ("broker", "controller"):
        jaas = props[f"listener.name.{listener}.plain.sasl.jaas.config"]
        assert 'username="broker"' in jaas and f'user_broker="{password}"' in jaas, listener
    assert props["sasl.mechanism.inter.broker.protocol"] == props["sasl.mechanism.controller.protocol"] == "PLAIN"
    args = (data / "format.args").read_text().splitlines()
    assert args[:3] == ["format", "--cluster-id", "Vq6mIbQzQhGt1Yk5xtXfPw"]
    scram = [args[i + 1] for i, a in enumerate(args) if a == "--add-scram"]
    assert scram == [f"SCRAM-SHA-512=[name={user},password={stand_in(var)}]" for user, var in KAFKA_PASSWORDS.items()]

    # The broker's certificate is signed by ca.pem for the names clients connect to.
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    for out, flags in ((key, ["-nocerts"]), (cert, ["-clcerts", "-nokeys"])):
        subprocess.run(["openssl", "pkcs12", "-in", str(secrets / "kafka.keystore.p12"), "-nodes",
                        "-passin", "env:P", "-out", str(out), *flags], check=True, capture_output=True,
                       env={**os.environ, "P": props["ssl.keystore.password"]})
    for hostname in ("kafka-secure", "localhost", "127.0.0.1"):
        _handshake((cert, key), secrets / "ca.pem", hostname)
    import ssl
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake((cert, key), secrets / "ca.pem", "kafka")

    # Idempotent: a second run keeps the keystore and does not format again.
    before = (secrets / "kafka.keystore.p12").read_bytes()
    (data / "format.args").unlink()
    server_properties = (config / "server.properties").read_text()
    again = _run_init(tmp_path, _passwords())
    assert again.returncode == 0, again.stderr
    assert (secrets / "kafka.keystore.p12").read_bytes() == before and not (data / "format.args").exists()
    assert (config / "server.properties").read_text() == server_properties


@pytest.mark.parametrize("user", list(KAFKA_PASSWORDS))
def test_the_secure_profile_refuses_to_start_without_each_password(tools, tmp_path, user):
    """One Kafka password unset: compose loads the file (it cannot require it, see
    _testable_text), then kafka-secure-init and every service that logs in as that user stop,
    naming the variable, before they do anything; the others pass the check and run their
    command. Each runs as compose runs it: kafka-init.sh and the services' entrypoints with
    the compose model's environment (the fraudstream commands stubbed)."""
    var = KAFKA_PASSWORDS[user]
    path = tmp_path / "docker-compose.yml"
    path.write_text(_testable_text(unset=(var,)))
    proc = _validate(tools, path)
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]

    init = services["kafka-secure-init"]["environment"]
    assert init[var] == ""
    refused = _run_init(tmp_path / "init", {v: init[v] for v in KAFKA_PASSWORDS.values()},
                        CLUSTER_ID=init["CLUSTER_ID"], KAFKA_CERT_SAN=init["KAFKA_CERT_SAN"])
    assert refused.returncode != 0 and f"kafka-init: set {var} " in refused.stderr, refused.stderr
    for folder in ("secrets", "config", "data"):
        assert not list((tmp_path / "init" / folder).iterdir()), folder

    stub = tmp_path / "bin"
    stub.mkdir()
    for command in ("fraudstream", "fraudstream-worker-entrypoint", "python"):
        (stub / command).write_text('#!/bin/sh\necho "$(basename "$0") $*" > "$OUT"\n')
        (stub / command).chmod(0o755)
    for name in SECURE_SERVICES:
        service = services[name]
        checked, then = _wrapped(service)
        assert checked == KAFKA_PASSWORDS[PRINCIPALS[name]], name
        mounts = {m["target"]: m for m in service["volumes"]}
        script = Path(mounts[service["entrypoint"][1]]["source"])
        out = tmp_path / f"{name}.out"
        command = service.get("command") or []
        run = subprocess.run(["sh", str(script), *service["entrypoint"][2:], *command],
                             env={"PATH": f"{stub}:/usr/bin:/bin", "OUT": str(out), **service["environment"]},
                             capture_output=True, text=True, timeout=30)
        if PRINCIPALS[name] == user:
            assert service["environment"]["FRAUDSTREAM_SASL_PASSWORD"] == "", name
            assert run.returncode != 0 and f"require-password: set {var} " in run.stderr, (name, run.stderr)
            assert not out.exists(), f"{name} ran its command without a password"
        else:
            assert run.returncode == 0, (name, run.stderr)
            assert out.read_text().split() == [Path(then[0]).name, *then[1:], *command], name


def _client_env(compose: dict[str, Any], name: str, bootstrap: str, cafile: Path) -> dict[str, str]:
    """A secure service's FRAUDSTREAM_* environment, pointed at the test's broker and CA."""
    env = dict(compose["services"][name]["environment"])
    env.update(FRAUDSTREAM_BROKER_URL=f"kafka://{bootstrap}", FRAUDSTREAM_SSL_CAFILE=str(cafile))
    return {**{k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}, **env}


def _settings(env: dict[str, str], monkeypatch) -> Settings:
    with monkeypatch.context() as m:
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            m.delenv(key)
        for key, value in env.items():
            if key.startswith(ENV_PREFIX):
                m.setenv(key, value)
        return load_settings()


def test_secure_profile_broker_runs_on_the_real_kafka_with_the_images_own_setup(compose, tmp_path, monkeypatch):
    """kafka-secure's environment from the compose model, turned into server.properties by
    the image's own KafkaDockerWrapper (it is in Kafka's jars), on storage formatted by
    kafka-init.sh with the real StorageTool, then the real broker: topics-secure and
    kafka-secure-acls run as compose runs them (as `admin`), the ACLs on the broker are exactly
    role_acls(settings, role) for each role, and each role may do only that; a wrong password
    and plaintext are refused. Only the ports are moved (free ones)."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             ResourcePatternFilter, ResourceType)
    from kafka.errors import KafkaError

    from fraudstream.stream.kafka_local import ensure_jars, free_port, role_acls
    from kafka_helpers import assert_read_refused

    libs = ensure_jars(Settings().kafka_home, progress=lambda *_: None)
    java = ["java", "-Xmx512m", "-cp", str(libs / "*")]
    storage_tool = "#!/bin/sh\nexec " + " ".join(f"'{a}'" for a in java) + ' kafka.tools.StorageTool "$@"\n'
    init_env = compose["services"]["kafka-secure-init"]["environment"]
    proc = _run_init(tmp_path, {var: init_env[var] for var in KAFKA_PASSWORDS.values()}, storage_tool,
                     CLUSTER_ID=init_env["CLUSTER_ID"], KAFKA_CERT_SAN=init_env["KAFKA_CERT_SAN"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "data" / "meta.properties").exists()

    env = dict(compose["services"]["kafka-secure"]["environment"])
    ports = {old: str(free_port()) for old in ("29092", "29093", "19093", "9093")}
    for key, value in env.items():
        env[key] = re.sub(r":(\d+)\b", lambda m: ":" + ports.get(m.group(1), m.group(1)), value)
    env["KAFKA_LOG_DIRS"] = str(tmp_path / "data")
    defaults, final = tmp_path / "defaults", tmp_path / "final"
    defaults.mkdir()
    final.mkdir()
    (defaults / "server.properties").write_text("")
    for name in ("log4j.properties", "tools-log4j.properties"):
        (defaults / name).write_text("log4j.rootLogger=WARN, stderr\n"
                                     "log4j.appender.stderr=org.apache.log4j.ConsoleAppender\n"
                                     "log4j.appender.stderr.Target=System.err\n"
                                     "log4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n")
    setup = subprocess.run(java + ["kafka.docker.KafkaDockerWrapper", "setup",
                                   "--default-configs-dir", str(defaults),
                                   "--mounted-configs-dir", str(tmp_path / "config"),
                                   "--final-configs-dir", str(final)],
                           env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, timeout=120)
    # As the image's launch script: "already formatted" (by kafka-init.sh) is expected.
    assert setup.returncode == 0 or "already formatted" in setup.stdout + setup.stderr, setup.stderr
    # The broker logs to the console, not to files in its tmpfs.
    assert (final / "log4j.properties").read_text().rstrip().endswith("log4j.rootLogger=INFO, stdout")

    external = f"localhost:{ports['9093']}"
    cafile = tmp_path / "secrets/ca.pem"
    client = dict(bootstrap_servers=external, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                  ssl_cafile=str(cafile), request_timeout_ms=10_000)
    services = {name: _client_env(compose, name, external, cafile) for name in SECURE_SERVICES}
    logins = {PRINCIPALS[name]: dict(client, sasl_plain_username=PRINCIPALS[name],
                                     sasl_plain_password=services[name]["FRAUDSTREAM_SASL_PASSWORD"])
              for name in SECURE_SERVICES}
    broker = subprocess.Popen(java + [f"-Dlog4j.configuration=file:{defaults / 'log4j.properties'}",
                                      "kafka.Kafka", str(final / "server.properties")],
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "broker.err", "w"))
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                admin = KafkaAdminClient(**logins["admin"])
                break
            except Exception:
                assert broker.poll() is None, (tmp_path / "broker.err").read_text()[-3000:]
                assert time.monotonic() < deadline, "the secure broker never answered"
                time.sleep(1)
        # The healthcheck's command, on the internal listener with the internal login.
        health = subprocess.run(java + ["kafka.admin.BrokerApiVersionsCommand", "--bootstrap-server",
                                        f"127.0.0.1:{ports['29092']}", "--command-config",
                                        str(tmp_path / "config/internal-client.properties")],
                                capture_output=True, text=True, timeout=120)
        assert health.returncode == 0 and "ApiVersion" in health.stdout, health.stdout + health.stderr

        # topics-secure, then kafka-secure-acls, each with its compose environment.
        for name, cmd in (("topics-secure", [sys.executable, "-c", "import sys; from fraudstream.stream.cli "
                                             "import main; sys.exit(main(sys.argv[1:]))",
                                             *compose["services"]["topics-secure"]["command"]]),
                          (ACLS, [sys.executable, str(ROOT / "deploy/secure/grant-acls.py")])):
            done = subprocess.run(cmd, env=services[name], capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, (name, done.stdout, done.stderr[-3000:])

        key = lambda a: (a.principal, a.host, a.operation, a.permission_type,  # noqa: E731
                         a.resource_pattern.resource_type, a.resource_pattern.resource_name,
                         a.resource_pattern.pattern_type)
        found, error = admin.describe_acls(ACLFilter(
            None, None, ACLOperation.ANY, ACLPermissionType.ANY,
            ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)))
        assert error is KafkaError or not getattr(error, "errno", 0), error
        for role, name in (("worker", "worker-secure"), ("trainer", "trainer-secure")):
            wanted = role_acls(_settings(services[name], monkeypatch), role)
            assert sorted(key(a) for a in found if a.principal == f"User:{role}") == sorted(map(key, wanted)), role
        assert {a.principal for a in found} == {f"User:{role}" for role in ROLES}  # nothing for anyone else
        # Granting again changes nothing (the one-shot service may run at every `up`).
        again = subprocess.run([sys.executable, str(ROOT / "deploy/secure/grant-acls.py")], env=services[ACLS],
                               capture_output=True, text=True, timeout=180)
        assert again.returncode == 0, again.stderr
        admin.close()

        # Each role can do its job and no more.
        topics = _settings(services["worker-secure"], monkeypatch).topics
        producer = KafkaProducer(**logins["worker"], acks="all")
        producer.send(topics.scores, b"{}").get(timeout=30)
        producer.close()
        producer = KafkaProducer(**logins["trainer"], acks="all")
        producer.send(topics.model_updates, b"{}", key=b"compose-test").get(timeout=30)  # compacted
        with pytest.raises(KafkaError):
            producer.send(topics.scores, b"{}").get(timeout=30)
        producer.close()
        assert_read_refused(topics.training_examples, **logins["worker"])

        refused = [dict(logins["worker"], sasl_plain_password=logins["trainer"]["sasl_plain_password"]),
                   dict(bootstrap_servers=external, request_timeout_ms=5000)]  # plaintext
        for settings in refused:
            with pytest.raises(KafkaError):
                KafkaAdminClient(**settings, bootstrap_timeout_ms=5000).list_topics()
    finally:
        broker.terminate()
        try:
            broker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()


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
    for path in ("pyproject.toml", "README.md", "stream", "stream/cli/__init__.py", "models",
                 "deploy/worker-entrypoint.sh"):
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


def test_a_worker_gives_up_its_stop_before_compose_kills_it(compose):
    """A worker whose stop cannot finish exits by itself, saying why (stream/stop_deadline.py),
    before the grace period's SIGKILL, which says nothing."""
    bound = Settings.model_fields["stop_timeout_s"].default
    for name in WORKERS:
        grace = compose["services"][name]["stop_grace_period"]
        assert grace.endswith("s") and float(grace[:-1]) > bound, name
