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

from soma.settings.kafka_security import check, librdkafka_security
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
# Java's default partitioner for keyed records (murmur2), as Kafka's Java clients, Kafka Streams, Connect and
# aiokafka use; librdkafka's own default is CRC-32. NULL keys go to a random partition (Soma sends none).
PARTITIONER = "murmur2_random"


def _upper(value: Any) -> Any:
    """Case-insensitive, as librdkafka takes them; an empty variable is unset."""
    return (value.strip().upper() or None) if isinstance(value, str) else value


def _optional_path(value: Any) -> Any:
    """An empty variable is unset; a path is made absolute now, so a child process in another folder finds it."""
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, str | Path):
        return Path(value).expanduser().absolute()
    return value

# Where Apicurio Registry serves its Confluent-compatible API (the local stack's registry).
LOCAL_REGISTRY_API = "/apis/ccompat/v7"


class KafkaSettings(Section):
    """The broker connection, the topic prefix and the schema registry."""

    model_config = SettingsConfigDict(env_prefix="SOMA_KAFKA_")

    bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every client talks to the brokers: PLAINTEXT, SSL (TLS; mutual TLS with a client"
        " certificate), SASL_PLAINTEXT or SASL_SSL. librdkafka security.protocol, aiokafka security_protocol.",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism, required by the SASL_* protocols: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    sasl_username: str | None = Field(None, description="SASL user name (required by the SASL_* protocols).")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (secret; required by the SASL_* protocols).",
    )
    ssl_ca_file: Path | None = Field(
        None, description="PEM file of the CA certificate(s) the brokers' certificates are checked against"
        " (SSL/SASL_SSL); unset: the system's CAs.",
    )
    ssl_cert_file: Path | None = Field(
        None, description="PEM client certificate for mutual TLS (SSL/SASL_SSL); needs SOMA_KAFKA_SSL_KEY_FILE.",
    )
    ssl_key_file: Path | None = Field(
        None, description="PEM private key of SOMA_KAFKA_SSL_CERT_FILE.",
    )
    ssl_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted SOMA_KAFKA_SSL_KEY_FILE (secret).",
    )
    ssl_check_hostname: bool = Field(
        True, description="Check that a broker's certificate names the host connected to (TLS). Turn off only"
        " for brokers whose certificates lack the advertised host name.",
    )
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
    env: str | None = Field(
        None, validation_alias=own("env"),
        description="Environment in topics.yaml's `environments:` whose replication factor, min.insync.replicas"
        " and partitions apply (to `soma topics ensure` and the streams); unset = the topics' own values.",
    )
    schema_registry_url: SecretStr | None = Field(
        None, validation_alias=own("schema_registry_url"),
        description="Confluent-compatible schema registry; unset: the local stack's when SOMA_STACK_REGISTRY=apicurio,"
        " else Avro single-object encoding.",
    )

    _protocol_case = field_validator("security_protocol", "sasl_mechanism", mode="before")(_upper)
    _paths = field_validator("ssl_ca_file", "ssl_cert_file", "ssl_key_file", mode="before")(_optional_path)

    @model_validator(mode="after")
    def _security_is_consistent(self) -> KafkaSettings:
        check(self)
        return self

    @field_validator("env")
    @classmethod
    def _empty_env_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("schema_registry_url")
    @classmethod
    def _registry_url_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        # confluent-kafka's client takes a comma-separated list of http(s) URLs, or mock://.
        urls = [] if value is None else value.get_secret_value().split(",")
        if any(not url.strip().startswith(("http://", "https://", "mock://")) for url in urls):
            raise ValueError("expected http(s)://host:port[/path][,...] or mock://name")
        return value

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
        """librdkafka settings shared by producers, consumers and the admin client (security included)."""
        return {
            "bootstrap.servers": self.bootstrap,
            "client.id": self.client_id,
            **librdkafka_security(self),
        }

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """An idempotent, fully acknowledged producer (no duplicates on retry, no loss on failover)."""
        config = self.config() | {
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": PARTITIONER,
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
    kafka_brokers: int = Field(
        1, ge=1, le=5,
        description="Brokers `soma stack up` runs (KRaft, each broker+controller): 1, or N with N host:port in"
        " SOMA_KAFKA_BOOTSTRAP (one per broker) and controller ports SOMA_STACK_KAFKA_CONTROLLER_PORT .. +N-1.",
    )
    kafka_cluster_heap: str = Field(
        "512m", description="JVM heap (-Xmx) of each broker when SOMA_STACK_KAFKA_BROKERS is more than 1."
    )

    registry: Literal["none", "apicurio"] = Field(
        "none",
        description="`apicurio`: `soma stack up` also runs Apicurio Registry (its data in the state folder)"
        " on 127.0.0.1:SOMA_STACK_REGISTRY_PORT, and the platform uses it when SOMA_SCHEMA_REGISTRY_URL is unset.",
    )
    registry_port: int = Field(8085, ge=1, le=65535, description="Port of the local schema registry.")
    registry_heap: str = Field("256m", description="JVM heap (-Xmx) of the local schema registry.")

    @property
    def local_registry_url(self) -> str:
        """The Confluent API of the registry `soma stack up` runs with `registry=apicurio`."""
        return f"http://127.0.0.1:{self.registry_port}{LOCAL_REGISTRY_API}"


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
