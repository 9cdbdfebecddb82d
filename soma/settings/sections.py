"""The settings sections of the connections (Kafka, PostgreSQL, Redis, local stack), and their base.

Every field reads the variable ``<section prefix><FIELD>``; a field whose variable does not
share the prefix names it with `own` (e.g. ``SOMA_TOPIC_PREFIX`` in the Kafka section), so
every ``SOMA_*`` name is the one documented in the README. Fields marked `LIVE` may change
while a process runs, through ``config_updates`` (see soma/live_config.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from soma.settings.values import env_name

# json_schema_extra marker of a live-changeable field.
LIVE: dict[str, Any] = {"live": True}


def own(flat: str) -> str:
    """The variable of a field outside its section's prefix (the flat name is the field name)."""
    return env_name(flat)


class Section(BaseSettings):
    """Common configuration: `.env` support, frozen, unknown variables ignored."""

    # Not populate_by_name: pydantic-settings would then also read <prefix><FIELD> for an aliased
    # field (e.g. SOMA_KAFKA_TOPIC_PREFIX), a variable nobody documents. `_by_field_name` instead.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _by_field_name(cls, data: Any) -> Any:
        """Accept an aliased field by its name too (from code: `replace`, `model_validate(model_dump())`)."""
        if not isinstance(data, dict):
            return data
        renamed = dict(data)
        for name, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, str) and name in renamed and alias not in renamed:
                renamed[alias] = renamed.pop(name)
        return renamed


RECORD_FRAMING_BYTES = 16_384


class KafkaSettings(Section):
    """The broker connection, the topic prefix and the schema registry."""

    model_config = SettingsConfigDict(env_prefix="SOMA_KAFKA_")

    bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="librdkafka security.protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when the security protocol uses SASL."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    client_id: str = Field("soma", description="client.id sent to the broker.")
    max_message_bytes: int = Field(
        1_000_000, ge=1024,
        description="Largest record (value + key + headers) any producer of the platform sends; a topic may"
        " lower it in topics.yaml. The broker's message.max.bytes must be at least this (its default is).",
    )
    timeout_s: float = Field(
        10.0, gt=0, description="Deadline for one broker round trip (metadata, ack, admin call)."
    )
    topic_prefix: str = Field(
        "", validation_alias=own("topic_prefix"),
        description="Prefix of every physical topic name (isolates test runs and environments).",
    )
    schema_registry_url: SecretStr | None = Field(
        None, validation_alias=own("schema_registry_url"),
        description="Confluent-compatible schema registry; unset = Avro single-object encoding.",
    )

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap_is_host_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port...], got {server.strip()!r}")
        return value

    @property
    def servers(self) -> list[tuple[str, int]]:
        """Bootstrap servers as (host, port) pairs."""
        pairs = []
        for server in self.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            pairs.append((host.strip("[]"), int(port)))
        return pairs

    def config(self) -> dict[str, Any]:
        """librdkafka settings shared by producers, consumers and the admin client."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username or ""
            if self.sasl_password is not None:
                config["sasl.password"] = self.sasl_password.get_secret_value()
        return config

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """An idempotent, fully acknowledged producer (no duplicates on retry, no loss on failover)."""
        config = self.config() | {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.timeout.ms": int(self.timeout_s * 3 * 1000),
            # librdkafka counts header framing too: leave it room so our own size check decides.
            "message.max.bytes": self.max_message_bytes + RECORD_FRAMING_BYTES,
        }
        return config | overrides

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        """A consumer that commits only what the caller says it has processed."""
        config = self.config() | {
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
        return config | overrides

    def topic_name(self, logical: str) -> str:
        """The physical topic behind a catalog name (the prefix isolates environments)."""
        return f"{self.topic_prefix}{logical}"


class DatabaseSettings(Section):
    """PostgreSQL."""

    model_config = SettingsConfigDict(env_prefix="SOMA_DATABASE_")

    url: SecretStr = Field(
        SecretStr("postgresql+psycopg://soma:soma@127.0.0.1:5432/soma"),
        description="SQLAlchemy URL of the PostgreSQL database (secret: holds the password).",
    )
    database_schema: str | None = Field(
        None, validation_alias=own("database_schema"),
        description="PostgreSQL schema to use instead of the role's default search_path.",
    )
    timeout_s: float = Field(10.0, gt=0, description="Deadline for connecting to PostgreSQL.")

    @field_validator("url")
    @classmethod
    def _url_is_postgres(cls, value: SecretStr) -> SecretStr:
        try:
            url = make_url(value.get_secret_value())
        except Exception as exc:
            raise ValueError("not a SQLAlchemy URL (postgresql+psycopg://user:pw@host:port/db)") from exc
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"expected a postgresql URL, got backend {url.get_backend_name()!r}")
        return value

    def sqlalchemy_url(self) -> URL:
        """The database URL as a SQLAlchemy `URL` (its `repr` hides the password)."""
        return make_url(self.url.get_secret_value())

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments for `sqlalchemy.create_engine` matching these settings."""
        connect_args: dict[str, Any] = {"connect_timeout": max(1, int(self.timeout_s))}
        if self.database_schema:
            connect_args["options"] = f"-csearch_path={self.database_schema}"
        return {"pool_pre_ping": True, "connect_args": connect_args}


class RedisSettings(Section):
    """Redis."""

    model_config = SettingsConfigDict(env_prefix="SOMA_REDIS_")

    url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL (secret: may hold a password)."
    )
    timeout_s: float = Field(10.0, gt=0, description="Deadline for connecting to Redis and for one command.")

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected redis://host:port/db")
        return value

    def url_value(self) -> str:
        return self.url.get_secret_value()


class StackSettings(Section):
    """The local stack (`soma stack`) and where processes keep their state."""

    model_config = SettingsConfigDict(env_prefix="SOMA_STACK_")

    state_dir: Path = Field(
        Path(".soma"), validation_alias=own("state_dir"),
        description="Where the local stack keeps its downloads, data, logs and pid files.",
    )
    kafka_controller_port: int = Field(9093, ge=1, le=65535, description="KRaft controller port of the local broker.")
    kafka_heap: str = Field("768m", description="JVM heap (-Xmx) of the local broker.")


class CatalogSettings(Section):
    """Where the topic catalog and its Avro schemas come from."""

    model_config = SettingsConfigDict(env_prefix="SOMA_CATALOG_")

    dir: Path | None = Field(
        None,
        description="A service's own catalog directory: its topics.yaml and a schemas/ directory of .avsc files"
        " (history/ inside for released versions). Unset or empty: the catalog shipped in the package (soma/catalog/).",
    )

    @field_validator("dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value
