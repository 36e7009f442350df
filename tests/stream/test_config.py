import pytest

from fraudstream.stream.config import ConfigError, Settings, load_settings


def test_defaults_follow_the_contract():
    s = load_settings()
    assert s.topics.transactions == "transactions"
    assert s.topics.transactions_dlq == "transactions.dlq"
    assert s.topics.training_examples == "training-examples"
    assert s.topics.model_updates == "model-updates"
    assert s.partitions == 8


def test_env_overrides_and_nested_topics(monkeypatch):
    monkeypatch.setenv("FRAUDSTREAM_BROKER_URL", "kafka://a:1,b:2")
    monkeypatch.setenv("FRAUDSTREAM_TOPICS__SCORES", "risk.scores")
    s = load_settings()
    assert s.bootstrap_servers == ["a:1", "b:2"]
    assert s.faust_broker == "kafka://a:1;b:2"
    assert s.topics.scores == "risk.scores"


def test_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("FRAUDSTREAM_PARTITIONS", "eight")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "FRAUDSTREAM_PARTITIONS" in str(info.value)


def test_bad_nested_value_names_the_nested_variable(monkeypatch):
    monkeypatch.setenv("FRAUDSTREAM_METRICS_PORT", "70000")
    with pytest.raises(ConfigError, match="FRAUDSTREAM_METRICS_PORT"):
        load_settings()


def test_settings_are_frozen():
    s = load_settings()
    with pytest.raises(Exception):
        s.partitions = 3  # type: ignore[misc]


def test_sasl_needs_credentials_and_hides_the_secret(monkeypatch):
    monkeypatch.setenv("FRAUDSTREAM_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FRAUDSTREAM_SASL_PASSWORD", "hunter2")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "FRAUDSTREAM_SASL_USERNAME" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_secret_is_not_in_repr_but_reaches_the_client(monkeypatch):
    s = Settings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                 sasl_username="u", sasl_password="hunter2")
    assert "hunter2" not in repr(s)
    assert s.kafka_python_security()["sasl_plain_password"] == "hunter2"
