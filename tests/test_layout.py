"""The repository layout and deployment files the project promises."""

from pathlib import Path

import yaml

from fraudstream.stream.kafka_local import KAFKA_VERSION

ROOT = Path(__file__).resolve().parent.parent


def test_top_level_layout():
    for name in ("pyproject.toml", "stream", "models", "tests", "deploy", "docker-compose.yml",
                 "Makefile", ".ci/run", "README.md", "docs/contract.md", "deploy/kafka/pom.xml"):
        assert (ROOT / name).exists(), name


def test_compose_runs_the_same_kafka_version_in_kraft_mode():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "healthcheck" in kafka


def test_pom_pins_the_same_kafka_version():
    pom = (ROOT / "deploy/kafka/pom.xml").read_text()
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in pom


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
