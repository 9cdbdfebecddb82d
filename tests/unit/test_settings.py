from __future__ import annotations

import pytest
from pydantic import ValidationError

from soma.errors import SettingsError
from soma.settings import LiveSettings, Settings, env_name, load_settings, parse_tenant_map


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SOMA_KAFKA_BOOTSTRAP", "SOMA_DATABASE_URL", "SOMA_REDIS_URL", "SOMA_TOPIC_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.load(_env_file=None)
    assert settings.kafka.bootstrap == "127.0.0.1:9092"
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
        settings.kafka.bootstrap = "elsewhere:9092"  # type: ignore[misc]


def test_secrets_are_masked_in_repr_and_safe_view() -> None:
    settings = load_settings(
        database_url="postgresql+psycopg://app:pg-s3cret-pw@db:5432/app",
        redis_url="redis://:redis-s3cret-pw@cache:6379/0",
        kafka_sasl_password="sasl-s3cret-pw",
        kafka_sasl_username="svc",
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
        ("schema_registry_url", "registry.internal:8081", "SOMA_SCHEMA_REGISTRY_URL"),
        ("schema_registry_url", "https://ok:8081,ftp://u:secret@x", "SOMA_SCHEMA_REGISTRY_URL"),
    ],
)
def test_bad_values_name_the_variable_in_one_line(field: str, value: str, variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(**{field: value})
    message = str(caught.value)
    assert message.startswith(f"invalid setting {variable}: ")
    assert "\n" not in message
    assert "secret" not in message


def test_bad_database_url_error_does_not_echo_the_password() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(database_url="mysql://u:do-not-show@h/db")
    assert "do-not-show" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_child_env_makes_settings_explicit() -> None:
    env = load_settings(topic_prefix="p.").child_env(EXTRA="1")
    assert env["SOMA_TOPIC_PREFIX"] == "p."
    assert env["EXTRA"] == "1"


# --- sections -------------------------------------------------------------------------------
def test_every_variable_keeps_its_flat_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOMA_DATABASE_SCHEMA", "s1")
    monkeypatch.setenv("SOMA_STATE_DIR", "/tmp/soma-state")
    monkeypatch.setenv("SOMA_OUTBOX_RELAY_BATCH_SIZE", "77")
    monkeypatch.setenv("SOMA_INTEGRATOR_ALPHA", "0.25")
    monkeypatch.setenv("SOMA_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.database.database_schema == "s1"
    assert str(settings.stack.state_dir) == "/tmp/soma-state"
    assert settings.relay.batch_size == 77
    assert settings.streams.live.integrator_alpha == 0.25
    assert settings.telemetry.log_level == "DEBUG"
    flat = Settings.flat_fields()
    assert len(flat) == len(set(flat)) == len(Settings.paths())
    assert all(env_name(name) in settings.child_env() for name, value in settings.flat_items() if value is not None)


def test_replace_validates_and_leaves_the_original_alone() -> None:
    settings = load_settings(_env_file=None)
    changed = settings.replace(enable_cog_threads=True, streams_web_port_base=7000, topic_prefix="r.")
    assert (changed.streams.live.enable_cog_threads, changed.streams.web_port_base, changed.kafka.topic_prefix) == (
        True, 7000, "r."
    )
    assert changed.kafka.bootstrap == settings.kafka.bootstrap
    with pytest.raises(SettingsError, match=r"^invalid setting SOMA_INTEGRATOR_ALPHA: "):
        settings.replace(integrator_alpha=5)
    with pytest.raises(TypeError, match="SOMA_NO_SUCH_THING"):
        settings.replace(no_such_thing=1)


def test_live_fields_are_marked_on_the_streams_live_section() -> None:
    from soma.live_config import LIVE_FIELDS

    assert "integrator_temperature" in LIVE_FIELDS
    assert "streams_web_port_base" not in LIVE_FIELDS
    assert set(LIVE_FIELDS) == set(LiveSettings.model_fields)


def test_backends_have_their_own_timeouts() -> None:
    settings = load_settings(kafka_timeout_s=3.0, database_timeout_s=7.0, redis_timeout_s=9.0)
    assert settings.sqlalchemy_engine_options()["connect_args"]["connect_timeout"] == 7
    assert settings.redis.timeout_s == 9.0
    defaults = Settings.flat_fields()
    assert defaults["database_timeout_s"].default == defaults["redis_timeout_s"].default == 10.0


# --- typed values parsed once ---------------------------------------------------------------
def test_tenant_maps_and_plugin_lists_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOMA_OUTBOX_RELAY_TENANT_QUOTAS", "acme=500, globex=20")
    monkeypatch.setenv("SOMA_OUTBOX_RELAY_CIRCUIT_RESET_S_BY_TENANT", "acme=0.5")
    monkeypatch.setenv("SOMA_TOOLS_PLUGINS", "pkg.mod:register, other:hook")
    settings = load_settings()
    assert settings.relay.tenant_quotas == {"acme": 500, "globex": 20}
    assert settings.relay.circuit_reset_s_by_tenant == {"acme": 0.5}
    assert settings.streams.tools_plugins == ("pkg.mod:register", "other:hook")
    env = settings.child_env()
    assert load_settings(outbox_relay_tenant_quotas=env["SOMA_OUTBOX_RELAY_TENANT_QUOTAS"]).relay.tenant_quotas == {
        "acme": 500, "globex": 20
    }
    with pytest.raises(SettingsError, match=r"^invalid setting SOMA_TOOLS_PLUGINS: "):
        load_settings(tools_plugins="not-a-reference")
    with pytest.raises(SettingsError, match=r"^invalid setting SOMA_OUTBOX_RELAY_TENANT_QUOTAS: "):
        load_settings(outbox_relay_tenant_quotas="acme=2.5")


def test_tenant_map_parses_pairs_and_empty() -> None:
    assert parse_tenant_map("", "outbox_relay_tenant_quotas") == {}
    assert parse_tenant_map("acme=500, globex=2.5", "outbox_relay_tenant_quotas") == {"acme": 500, "globex": 2.5}


@pytest.mark.parametrize("text", ["acme", "=5", "acme=x", "acme=-1"])
def test_tenant_map_error_names_the_variable(text: str) -> None:
    with pytest.raises(SettingsError, match="SOMA_OUTBOX_RELAY_TENANT_QUOTAS") as caught:
        parse_tenant_map(text, "outbox_relay_tenant_quotas")
    assert "\n" not in str(caught.value)


def test_malformed_per_tenant_setting_is_one_line_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="SOMA_OUTBOX_RELAY_CIRCUIT_FAILURES_BY_TENANT"):
        load_settings(outbox_relay_circuit_failures_by_tenant="acme:3")


def test_admin_tokens_are_parsed_on_demand_into_grants() -> None:
    token = "0123456789abcdef-token"
    settings = load_settings(admin_tokens=f'{{"{token}": {{"scope": "tenant:a tenant:b", "name": "ops-ab"}}}}')
    (grant,) = settings.admin.grants()
    assert (grant.actor, grant.all_tenants, grant.tenants) == ("ops-ab", False, frozenset({"a", "b"}))
    assert token not in repr(grant)
    bad = settings.replace(admin_tokens="short=admin")  # loads: only the admin API refuses it
    with pytest.raises(SettingsError, match=r"^invalid setting SOMA_ADMIN_TOKENS: entry 1: a token must be"):
        bad.admin.grants()


def test_only_the_documented_variables_are_read_and_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOMA_TOPIC_PREFIX", "env.")
    monkeypatch.setenv("SOMA_KAFKA_TOPIC_PREFIX", "section-prefixed.")  # not a Soma variable
    monkeypatch.setenv("SOMA_STREAMS_OPA_URL", "http://not-a-soma-variable")
    settings = load_settings(_env_file=None)
    assert (settings.kafka.topic_prefix, settings.streams.opa_url) == ("env.", None)
    assert load_settings(_env_file=None, topic_prefix="given.").kafka.topic_prefix == "given."
    assert Settings.model_validate(settings.model_dump()).kafka.topic_prefix == "env."


def test_schema_registry_url_explicit_else_the_local_stacks_else_none() -> None:
    assert load_settings(_env_file=None).schema_registry_url_value() is None
    local = load_settings(_env_file=None, stack_registry="apicurio", stack_registry_port="18085")
    assert local.schema_registry_url_value() == "http://127.0.0.1:18085/apis/ccompat/v7"
    given = local.replace(schema_registry_url="https://registry.example:8081")
    assert given.schema_registry_url_value() == "https://registry.example:8081"


@pytest.mark.parametrize(("field", "value", "variable"), [
    ("stack_registry", "karapace", "SOMA_STACK_REGISTRY"),
    ("stack_registry_port", "70000", "SOMA_STACK_REGISTRY_PORT"),
])
def test_bad_stack_registry_settings_name_the_variable(field: str, value: str, variable: str) -> None:
    with pytest.raises(SettingsError, match=rf"^invalid setting {variable}: [^\n]*$"):
        load_settings(_env_file=None, **{field: value})
