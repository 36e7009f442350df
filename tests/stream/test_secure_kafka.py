"""TLS + SASL end to end: a SASL_SSL (SCRAM-SHA-512) broker with the KRaft authorizer on.

A worker and the trainer run as their own principals with exactly the ACLs of
``role_acls`` (docs/security.md), never as the super user; the CLI tools that talk to Kafka
run as the operator (``admin``). Plaintext and wrong-password clients are refused.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ACLFilter, ACLOperation, ACLPermissionType, ResourcePatternFilter, ResourceType
from kafka.admin import ACLResourcePatternType
from kafka.errors import KafkaTimeoutError

from fraudstream.stream import simulator as sim
from fraudstream.stream.config import Settings, TopicNames, load_settings
from fraudstream.stream.kafka_local import ROLES, LocalBroker, free_port, role_acls
from fraudstream.stream.processes import TrainerProcess, WorkerProcess, settings_env
from fraudstream.stream.topics import topic_specs

from kafka_helpers import assert_read_refused
from trainer_helpers import cli, model_version, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DELAY_DAYS = 3
SIM = dict(customers=150, terminals=300, days=20, seed=11)
TRAINER = dict(
    label_delay_days=DELAY_DAYS, trainer_interval_s=3600, trainer_new_frauds_trigger=100_000,
    trainer_holdout_days=5, trainer_gap_days=DELAY_DAYS, trainer_min_frauds=20, trainer_min_fit_frauds=10,
    trainer_diffusion_steps=300, trainer_xgb_estimators=100,
    # This test is about the path a promotion takes (the trainer's writes, the worker's swap),
    # not about which model wins on a small sample: every challenger is promoted.
    trainer_promote_margin=-1,
)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory):
    """A SASL_SSL broker of its own on a free port (certificates and users made at start)."""
    broker = LocalBroker(tmp_path_factory.mktemp("kafka-secure"), load_settings().kafka_home,
                         port=free_port(), secure=True)
    broker.start(progress=print)
    try:
        yield broker
    finally:
        broker.stop()


def as_user(broker: LocalBroker, user: str, base: Settings) -> Settings:
    env = broker.client_env(user)
    return base.model_copy(update={
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": user,
        "sasl_password": load_settings(sasl_password=env["FRAUDSTREAM_SASL_PASSWORD"]).sasl_password,
        "ssl_cafile": Path(env["FRAUDSTREAM_SSL_CAFILE"]),
    })


def env_of(s: Settings, **extra: object) -> dict[str, str]:
    return settings_env(s, app_id=s.app_id, security_protocol=s.security_protocol,
                        sasl_mechanism=s.sasl_mechanism, sasl_username=s.sasl_username,
                        sasl_password=s.sasl_password.get_secret_value(), ssl_cafile=s.ssl_cafile,
                        **extra)


def read_all(s: Settings, topic: str, until, timeout: float) -> list:
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap_servers, enable_auto_commit=False,
                             **s.kafka_python_security())
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        consumer.seek_to_beginning()
        while time.monotonic() < deadline and not until(records):
            for msgs in consumer.poll(timeout_ms=500, max_records=5000).values():
                records.extend(msgs)
    finally:
        consumer.close()
    return records


@pytest.fixture(scope="module")
def operator(secure_broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    suffix = uuid.uuid4().hex[:6]
    topics = TopicNames(**{k: f"{v}-{suffix}" for k, v in TopicNames().model_dump().items()})
    base = load_settings(broker_url=f"kafka://{secure_broker.status().bootstrap}", topics=topics,
                         app_id=f"sec-{suffix}", partitions=2, metrics_port=0,
                         model_registry=tmp_path_factory.mktemp("registry"))
    return as_user(secure_broker, "admin", base)


def test_plaintext_and_wrong_password_clients_are_refused(secure_broker, caplog):
    bootstrap = secure_broker.status().bootstrap
    attempts = {
        "plaintext": {},
        "wrong password": {**secure_broker.admin_security(), "sasl_plain_password": "not-it"},
    }
    seen = {}
    for name, kwargs in attempts.items():
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="kafka"):
            with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
                KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                                 bootstrap_timeout_ms=3000, **kwargs)
        seen[name] = caplog.text
    # A plaintext request to the TLS listener: the broker answers with a TLS alert and hangs up.
    assert re.search(r"socket disconnected|Invalid frame length", seen["plaintext"]), seen["plaintext"]
    # The client usually logs the broker's reason (SaslAuthenticationFailedError: ... invalid
    # credentials ...); when the broker's close wins the race it sees only the hang-up.
    assert re.search(r"invalid credentials with SASL mechanism SCRAM-SHA-512|socket disconnected",
                     seen["wrong password"]), seen["wrong password"]
    # The broker's security log names both reasons.
    log = secure_broker.security_log_file.read_text()
    assert "SSL handshake failed" in log
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in log


def test_worker_trainer_and_cli_tools_over_sasl_ssl_with_minimal_acls(
        secure_broker: LocalBroker, operator: Settings, tmp_path: Path):
    worker_s, trainer_s = (as_user(secure_broker, role, operator) for role in ROLES)
    granted = {role: role_acls(operator, role) for role in ROLES}
    secure_broker.grant([a for acls in granted.values() for a in acls])
    admin_env = env_of(operator)

    # topics create (operator), then the worker and the trainer with their own principals
    done = cli(admin_env, "topics", "create")
    assert done.returncode == 0, done.stderr[-2000:]
    assert {s.name for s in topic_specs(operator)} <= set(re.findall(r"^(\S+)\s", done.stdout, re.M))
    worker = WorkerProcess(env_of(worker_s, **TRAINER), tmp_path / "worker.log", "w1")
    trainer = TrainerProcess(env_of(trainer_s, **TRAINER), tmp_path / "trainer.log")
    procs = (worker, trainer)
    try:
        # simulate --to-kafka (operator); the same seed in-process gives the expected tx_ids
        done = cli(admin_env, "simulate", "--to-kafka", "--label-delay-days", str(DELAY_DAYS),
                   *(f"--{k}={v}" for k, v in SIM.items()))
        assert done.returncode == 0, done.stderr[-2000:]
        df = sim.simulate(sim.SimulationConfig(
            n_customers=SIM["customers"], n_terminals=SIM["terminals"], n_days=SIM["days"],
            seed=SIM["seed"], label_delay_days=DELAY_DAYS))
        n = len(df)
        assert f"produced {n:,} transactions" in done.stdout, done.stdout
        bad = KafkaProducer(bootstrap_servers=operator.bootstrap_servers, **operator.kafka_python_security())
        bad.send(operator.topics.transactions, key=b"c-bad", value=b"{not json").get(timeout=30)
        bad.close()

        scores = read_all(operator, operator.topics.scores, lambda r: len(r) >= n, timeout=90)
        assert {json.loads(r.value)["tx_id"] for r in scores} == set(df["tx_id"]), worker.log_tail()
        assert len(scores) == n
        wait_for("the trainer's window", lambda: (trainer.metric(
            "fraudstream_trainer_examples_total", {"outcome": "kept"}) or 0) >= 0.9 * n, 60, *procs)

        # retrain (operator) -> a cycle promotes -> the worker swaps to the champion
        done = cli(admin_env, "retrain", "--reason", "secure test")
        assert done.returncode == 0 and "retrain requested" in done.stdout, done.stderr[-2000:]
        wait_for("a finished cycle", lambda: trainer.metric("fraudstream_trainer_cycles_total"),
                 60, *procs)
        assert trainer.metric("fraudstream_trainer_cycles_total", {"outcome": "promoted"}) == 1, \
            trainer.log_tail(30)
        champion = wait_for("the worker on the champion",
                            lambda: (v := model_version(worker)) not in (None, "online-v1") and v,
                            30, *procs)

        # models list and dlq replay --dry-run (operator)
        done = cli(admin_env, "models", "list")
        assert done.returncode == 0 and champion in done.stdout, done.stdout + done.stderr[-2000:]
        done = cli(admin_env, "dlq", "replay", "--dry-run", "--summary-only")
        assert done.returncode == 0, done.stderr[-2000:]
        assert "read 1 dead letters: would re-publish 0, 1 still invalid" in done.stdout, done.stdout
        for p in procs:
            assert p.proc.poll() is None, p.log_tail()
    finally:
        for p in procs:
            p.stop()

    # The worker and the trainer ran with exactly the granted ACLs, and nothing was refused.
    admin = KafkaAdminClient(bootstrap_servers=operator.bootstrap_servers, **operator.kafka_python_security())
    try:
        for role, acls in granted.items():
            found, error = admin.describe_acls(ACLFilter(
                f"User:{role}", None, ACLOperation.ANY, ACLPermissionType.ANY,
                ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)))
            key = lambda a: (a.operation, a.resource_pattern.resource_type,  # noqa: E731
                             a.resource_pattern.resource_name, a.resource_pattern.pattern_type)
            assert sorted(map(key, found)) == sorted(map(key, acls)), role
    finally:
        admin.close()
    refused = [line for line in secure_broker.security_log_file.read_text().splitlines()
               if "is Denied" in line and ("User:worker" in line or "User:trainer" in line)]
    assert refused == []

    # ... and a principal without a grant is refused: the worker may not read the trainer's input.
    assert_read_refused(operator.topics.training_examples,
                        bootstrap_servers=worker_s.bootstrap_servers,
                        **worker_s.kafka_python_security())


def test_benchmark_load_generator_produces_over_sasl_ssl(operator: Settings, tmp_path: Path):
    """kcat (librdkafka) gets the same TLS + SCRAM settings as every other client."""
    from fraudstream.stream.load import LoadTools, PacedProducer, write_lines
    from fraudstream.stream.topics import create_topics

    # topics of its own: the module's other tests write the operator's transactions topic
    own = operator.model_copy(update={"topics": TopicNames(**{
        k: f"{v}-kcat" for k, v in operator.topics.model_dump().items()})})
    create_topics(own)
    topic = own.topics.transactions
    lines = [(f"c{i}".encode(), f'{{"i":{i}}}'.encode()) for i in range(50)]
    write_lines(tmp_path / "load.txt", lines)
    PacedProducer(LoadTools.find(), own, topic, tmp_path / "load.txt").wait(timeout=120)
    records = read_all(own, topic, lambda r: len(r) >= 50, timeout=60)
    assert sorted((r.key, r.value) for r in records) == sorted(lines)


def test_bench_runs_over_sasl_ssl_as_the_operator(operator: Settings):
    """`fraudstream bench --use-broker`: its topics, workers, readers and kcat all on SASL_SSL."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "fraudstream.stream.cli", "bench", "--use-broker", "--only", "latency",
         "--rates", "100", "--latency-seconds", "3", "--labels", "all"],
        env=env_of(operator), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[:done.stdout.rindex("}") + 1])
    row = result["latency_by_offered_tps"]["100"]
    assert row["pipeline"]["n"] == row["passthrough"]["n"] == 300
    assert 0 < row["pipeline"]["p50"] < 60_000
    assert row["pipeline"]["loop_lag_p99_le"] is not None  # the worker's loop watch was read
