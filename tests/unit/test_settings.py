from __future__ import annotations

import pytest
from pydantic import ValidationError

from soma.errors import SettingsError
from soma.settings import Settings, load_settings


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SOMA_KAFKA_BOOTSTRAP", "SOMA_DATABASE_URL", "SOMA_REDIS_URL", "SOMA_TOPIC_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.sqlalchemy_url().host == "127.0.0.1"
    assert settings.redis_url_value() == "redis://127.0.0.1:6379/0"


def test_environment_overrides_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOMA_KAFKA_BOOTSTRAP", "k1:9092,k2:9093")
    monkeypatch.setenv("SOMA_TOPIC_PREFIX", "staging.")
    settings = load_settings()
    assert settings.kafka_servers == [("k1", 9092), ("k2", 9093)]
    assert settings.topic_name("chat.messages") == "staging.chat.messages"


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.kafka_bootstrap = "elsewhere:9092"  # type: ignore[misc]


def test_secrets_are_masked_in_repr_and_safe_view() -> None:
    settings = load_settings(
        database_url="postgresql+psycopg://app:pg-s3cret-pw@db:5432/app",
        redis_url="redis://:redis-s3cret-pw@cache:6379/0",
        kafka_sasl_password="sasl-s3cret-pw",
        kafka_sasl_mechanism="PLAIN",
        kafka_security_protocol="SASL_SSL",
    )
    shown = repr(settings) + str(settings) + str(settings.safe_view()) + repr(settings.sqlalchemy_url())
    for secret in ("pg-s3cret-pw", "redis-s3cret-pw", "sasl-s3cret-pw"):
        assert secret not in shown
    assert settings.safe_view()["SOMA_DATABASE_URL"] == "postgresql+psycopg://app:***@db:5432/app"
    # ...but the clients still get them.
    assert settings.kafka_config()["sasl.password"] == "sasl-s3cret-pw"
    assert settings.sqlalchemy_url().password == "pg-s3cret-pw"


def test_producer_is_idempotent_and_fully_acknowledged() -> None:
    config = load_settings().producer_config()
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"


def test_consumer_commits_only_explicitly() -> None:
    config = load_settings().consumer_config("g")
    assert config["group.id"] == "g"
    assert config["enable.auto.commit"] is False


def test_database_schema_sets_search_path() -> None:
    options = load_settings(database_schema="run_1").sqlalchemy_engine_options()
    assert options["connect_args"]["options"] == "-csearch_path=run_1"


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("kafka_bootstrap", "localhost", "SOMA_KAFKA_BOOTSTRAP"),
        ("kafka_bootstrap", "host:99999", "SOMA_KAFKA_BOOTSTRAP"),
        ("database_url", "mysql://u:p@h/db", "SOMA_DATABASE_URL"),
        ("redis_url", "http://cache", "SOMA_REDIS_URL"),
        ("kafka_security_protocol", "TELNET", "SOMA_KAFKA_SECURITY_PROTOCOL"),
        ("kafka_timeout_s", "-1", "SOMA_KAFKA_TIMEOUT_S"),
    ],
)
def test_bad_values_name_the_variable_in_one_line(field: str, value: str, variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(**{field: value})
    message = str(caught.value)
    assert message.startswith(f"invalid setting {variable}: ")
    assert "\n" not in message


def test_bad_database_url_error_does_not_echo_the_password() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(database_url="mysql://u:do-not-show@h/db")
    assert "do-not-show" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_child_env_makes_settings_explicit() -> None:
    env = load_settings(topic_prefix="p.").child_env(EXTRA="1")
    assert env["SOMA_TOPIC_PREFIX"] == "p."
    assert env["EXTRA"] == "1"
