"""The one typed, frozen settings object, and the client configurations derived from it.

Every setting is read from the environment (prefix ``SOMA_``) or a ``.env`` file in the
working directory; nothing else in the project reads the environment. Secrets are
`SecretStr`, so `repr()`, logs and ``soma settings`` show them masked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from soma.errors import SettingsError

ENV_PREFIX = "SOMA_"


def env_name(field: str) -> str:
    """The environment variable behind a settings field, e.g. ``SOMA_KAFKA_BOOTSTRAP``."""
    return f"{ENV_PREFIX}{field.upper()}"


def mask_url(url: str) -> str:
    """`url` with any password replaced by ``***`` (safe to print or log)."""
    try:
        parsed = make_url(url)
    except Exception:  # not an RFC-1738 URL: show nothing of it rather than a secret
        return "***"
    return parsed.render_as_string(hide_password=True)


class Settings(BaseSettings):
    """Effective configuration of every Soma process. Defaults point at the local stack."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- Kafka -------------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="librdkafka security.protocol."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when the security protocol uses SASL."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    kafka_client_id: str = Field("soma", description="client.id sent to the broker.")
    kafka_timeout_s: float = Field(
        10.0, gt=0, description="Deadline for one broker round trip (metadata, ack, admin call)."
    )
    topic_prefix: str = Field(
        "", description="Prefix of every physical topic name (isolates test runs and environments)."
    )
    schema_registry_url: SecretStr | None = Field(
        None, description="Confluent-compatible schema registry; unset = Avro single-object encoding."
    )

    # --- PostgreSQL / Redis --------------------------------------------------------------
    database_url: SecretStr = Field(
        SecretStr("postgresql+psycopg://soma:soma@127.0.0.1:5432/soma"),
        description="SQLAlchemy URL of the PostgreSQL database (secret: holds the password).",
    )
    database_schema: str | None = Field(
        None, description="PostgreSQL schema to use instead of the role's default search_path."
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL (secret: may hold a password)."
    )

    # --- Process and local stack ----------------------------------------------------------
    state_dir: Path = Field(
        Path(".soma"), description="Where the local stack keeps its downloads, data, logs and pid files."
    )
    stack_kafka_controller_port: int = Field(
        9093, ge=1, le=65535, description="KRaft controller port of the local broker."
    )
    stack_kafka_heap: str = Field("768m", description="JVM heap (-Xmx) of the local broker.")
    log_format: Literal["json", "text"] = Field(
        "json", description="Log lines of every process: one JSON object per line, or text for people at a terminal."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severe level a process logs (root logger; libraries included)."
    )

    # --- Admin API (outbox inspection and replay; parsed and checked by outbox/auth.py) -----
    admin_tokens: SecretStr | None = Field(
        None,
        description=(
            "Bearer tokens of the admin API and their scopes (secret): a JSON object "
            '{"<token>": "admin" | "tenant:<id>" | {"scope": "...", "name": "..."}} or a comma list '
            "token=scope. Unset: `soma admin serve` refuses to start."
        ),
    )
    admin_host: str = Field("127.0.0.1", description="Address `soma admin serve` listens on.")
    admin_port: int = Field(8081, ge=1, le=65535, description="Port `soma admin serve` listens on.")
    admin_replay_max_rows: int = Field(
        100_000, ge=1, description="Most rows one replay may copy (a larger filter is refused, nothing written)."
    )
    admin_shutdown_timeout_s: float = Field(
        10.0, gt=0, description="Grace for in-flight admin requests when the server stops, then it exits."
    )

    # --- Outbox relay (read by outbox/relay.py and outbox/policy.py) --------------------------
    outbox_relay_batch_size: int = Field(
        1000, ge=1, le=50_000, description="Most rows one relay claim takes (over all tenants)."
    )
    outbox_relay_tenant_quota: int = Field(
        100, ge=1, description="Rows per tenant per round-robin round of a claim (the fair share unit)."
    )
    outbox_relay_tenant_quotas: str = Field(
        "",
        pattern=r"^$|^[^=,]+=[0-9]+(,[^=,]+=[0-9]+)*$",
        description="Per-tenant quota overrides as tenant=rows,tenant=rows (a weight of that tenant's share).",
    )
    outbox_relay_pipeline_depth: int = Field(
        4, ge=1, le=64, description="Claimed batches in flight at once (each holds its rows locked until acked)."
    )
    outbox_relay_poll_min_s: float = Field(
        0.002, gt=0, description="--drain: first wait after an empty claim while due rows are locked elsewhere."
    )
    outbox_relay_poll_max_s: float = Field(
        0.2, gt=0, description="Longest wait for commits in progress before the relay idles; --drain poll cap."
    )
    outbox_relay_idle_timeout_s: float = Field(
        5.0, gt=0, description="Longest idle wait for a NOTIFY before the relay looks anyway (retries, other relays)."
    )
    outbox_relay_delivery_timeout_s: float = Field(
        30.0, gt=0, description="Broker acknowledgement deadline per record (librdkafka message.timeout.ms)."
    )
    outbox_relay_retry_base_s: float = Field(
        1.0, gt=0, description="Backoff after a row's first failed attempt; doubles per attempt, with jitter."
    )
    outbox_relay_retry_max_s: float = Field(300.0, gt=0, description="Cap of the retry backoff.")
    outbox_relay_max_attempts: int = Field(
        10, ge=1, description="Attempts after which a failing row is parked as dead with its last error."
    )
    outbox_relay_circuit_failures: int = Field(
        5, ge=1, description="Consecutive failed deliveries of one tenant that open its circuit."
    )
    outbox_relay_circuit_failures_by_tenant: str = Field(
        "",
        pattern=r"^$|^[^=,]+=[0-9]+(,[^=,]+=[0-9]+)*$",
        description="Per-tenant circuit thresholds as tenant=failures,tenant=failures.",
    )
    outbox_relay_circuit_reset_s: float = Field(
        30.0, gt=0, description="Seconds an open circuit waits before one half-open probe row."
    )
    outbox_relay_circuit_reset_s_by_tenant: str = Field(
        "",
        pattern=r"^$|^[^=,]+=[0-9]+(\.[0-9]+)?(,[^=,]+=[0-9]+(\.[0-9]+)?)*$",
        description="Per-tenant circuit reset intervals as tenant=seconds,tenant=seconds.",
    )
    outbox_relay_metrics_host: str = Field(
        "127.0.0.1", description="Address of the relay's Prometheus /metrics and /healthz endpoint."
    )
    outbox_relay_metrics_port: int = Field(
        9465, ge=0, le=65535, description="Port of the relay's /metrics and /healthz (0: any free port, logged)."
    )
    outbox_relay_gauge_interval_s: float = Field(
        5.0, gt=0, description="How often the relay recounts the pending-rows and oldest-age gauges."
    )

    # --- Streams (Faust processes in streams/; the live ones can change via config_updates) ---
    streams_web_host: str = Field("127.0.0.1", description="Address of every stream's web port (/metrics, /ready).")
    streams_web_port_base: int = Field(
        6100, ge=1, le=65000,
        description="Web port of the worker; tools, integrator, segmenter, replicator use base+1 .. base+4.",
    )
    streams_stall_after_s: float = Field(
        60.0, gt=0, description="Readiness fails when committed offsets have not advanced this long while records wait."
    )
    streams_session_timeout_s: float = Field(
        30.0, ge=6, le=300,
        description="Consumer group session timeout: how long a killed worker's partitions wait before reassignment.",
    )
    streams_dedupe_window: int = Field(
        256, ge=1, le=100_000, description="Recent input event ids kept per state key to drop duplicates."
    )
    enable_cog_threads: bool = Field(
        False, description="Live. Gates integrator and segmenter: off, they consume and commit but emit nothing."
    )
    integrator_alpha: float = Field(
        0.5, gt=0, le=1, description="Live. EMA smoothing of predictor confidences (1 = latest value only)."
    )
    integrator_temperature: float = Field(
        1.0, gt=0, le=1e6, description="Live. Softmax temperature over the smoothed confidences."
    )
    integrator_frame_ttl_s: int = Field(
        3600, ge=1, description="TTL of the global_frame:{tenant} key the integrator writes to Redis."
    )
    opa_url: str | None = Field(
        None, description="OPA base URL (http://host:port); set: leader changes are checked with OPA."
    )
    opa_policy_path: str = Field(
        "soma/leader/allow", description="OPA data path queried for a leader change (POST /v1/data/<path>)."
    )
    opa_fail_mode: Literal["open", "closed"] = Field(
        "open", description="Live. When OPA cannot answer: open allows the change, closed keeps the old leader."
    )
    opa_timeout_s: float = Field(1.0, gt=0, le=60, description="Live. Deadline of one OPA decision call.")
    segmenter_mode: Literal["threshold", "hmm"] = Field(
        "threshold", description="Live. Boundary detection: dwell/threshold rules, or a two-state HMM (Viterbi)."
    )
    segmenter_dwell_frames: int = Field(
        3, ge=1, le=10_000, description="Live. Frames a new leader must hold before a leader_change boundary."
    )
    segmenter_drop_threshold: float = Field(
        0.3, gt=0, le=1, description="Live. Drop of the leader's weight between frames that is a boundary."
    )
    segmenter_hmm_enter_p: float = Field(
        0.05, gt=0, lt=1, description="Live. HMM transition probability steady -> boundary."
    )
    segmenter_hmm_exit_p: float = Field(
        0.7, gt=0, lt=1, description="Live. HMM transition probability boundary -> steady."
    )
    segmenter_hmm_emit_boundary: float = Field(
        0.9, gt=0, lt=1, description="Live. HMM probability of a change signal in the boundary state."
    )
    segmenter_hmm_emit_steady: float = Field(
        0.1, gt=0, lt=1, description="Live. HMM probability of a change signal in the steady state."
    )
    segmenter_hmm_window: int = Field(
        16, ge=2, le=1000, description="Live. Frames the HMM's Viterbi pass looks back over."
    )
    tools_concurrency: int = Field(8, ge=1, le=1000, description="Live. Tool calls running at once per tools process.")
    tools_max_timeout_s: float = Field(
        30.0, gt=0, description="Cap on a tool request's timeout_ms (a request cannot ask for longer)."
    )
    tools_plugins: str = Field(
        "", description="Extra tools: comma list of module:function, each called with the registry to register."
    )
    worker_responder: str = Field(
        "", description="module:attribute of the responder producing assistant messages; empty: no replies."
    )
    replicator_retry_base_s: float = Field(
        0.5, gt=0, description="First backoff of the replicator while PostgreSQL is unavailable (doubles)."
    )
    replicator_retry_max_s: float = Field(10.0, gt=0, description="Cap of that backoff.")
    # --- end Streams ----------------------------------------------------------------------

    # --- Supervisor (`soma up`) and health endpoints ----------------------------------------
    supervisor_stop_grace_s: float = Field(
        20.0, gt=0, le=600,
        description="Grace for all supervised children together to exit after SIGTERM, then SIGKILL.",
    )
    supervisor_backoff_base_s: float = Field(
        1.0, gt=0, description="Delay before the first restart of a crashed child (doubles per crash in a row)."
    )
    supervisor_backoff_max_s: float = Field(30.0, gt=0, description="Cap of the restart delay.")
    supervisor_backoff_reset_s: float = Field(
        60.0, gt=0, description="A child that stayed up this long restarts after the base delay again."
    )
    supervisor_ready_timeout_s: float = Field(
        300.0, gt=0, description="How long `soma up --detach` waits for every component to be ready."
    )
    supervisor_poll_s: float = Field(
        1.0, gt=0, le=60, description="How often the supervisor checks its children and their /readyz."
    )
    health_check_timeout_s: float = Field(
        1.0, gt=0, le=30, description="Deadline of one dependency check behind a /readyz endpoint."
    )
    health_cache_s: float = Field(
        1.5, ge=0, le=60, description="How long a /readyz result is reused before the checks run again."
    )
    # --- Traces (OpenTelemetry; read by soma/observability/telemetry.py) ----------------------------------
    otel_traces_exporter: Literal["none", "console", "otlp", "jsonl"] = Field(
        "none",
        description=(
            "Where spans go: none (off, no cost), console (stdout), otlp (OTLP/HTTP to the endpoint below), "
            "jsonl (one JSON span per line to SOMA_OTEL_TRACES_FILE)."
        ),
    )
    otel_exporter_otlp_endpoint: str = Field(
        "http://127.0.0.1:4318",
        description="OTLP/HTTP collector base URL (/v1/traces is appended) for the otlp exporter.",
    )
    otel_traces_file: Path | None = Field(
        None, description="File of the jsonl exporter; {service} in it becomes the process's service name."
    )
    otel_service_prefix: str = Field(
        "soma-", description="Prefix of every process's service.name (soma-relay, soma-worker, soma-cli, ...)."
    )
    otel_traces_sample_ratio: float = Field(
        1.0, ge=0, le=1,
        description="Share of new traces sampled (parent-based: a hop follows its upstream's decision).",
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_is_host_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port...], got {server.strip()!r}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_url_is_postgres(cls, value: SecretStr) -> SecretStr:
        try:
            url = make_url(value.get_secret_value())
        except Exception as exc:
            raise ValueError("not a SQLAlchemy URL (postgresql+psycopg://user:pw@host:port/db)") from exc
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"expected a postgresql URL, got backend {url.get_backend_name()!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected redis://host:port/db")
        return value

    # --- Derived configuration ------------------------------------------------------------
    @property
    def kafka_servers(self) -> list[tuple[str, int]]:
        """Bootstrap servers as (host, port) pairs."""
        pairs = []
        for server in self.kafka_bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            pairs.append((host.strip("[]"), int(port)))
        return pairs

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka settings shared by producers, consumers and the admin client."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "client.id": self.kafka_client_id,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_sasl_username or ""
            if self.kafka_sasl_password is not None:
                config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        return config

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """An idempotent, fully acknowledged producer (no duplicates on retry, no loss on failover)."""
        config = self.kafka_config() | {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.timeout.ms": int(self.kafka_timeout_s * 3 * 1000),
        }
        return config | overrides

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        """A consumer that commits only what the caller says it has processed."""
        config = self.kafka_config() | {
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
        return config | overrides

    def topic_name(self, logical: str) -> str:
        """The physical topic behind a catalog name (the prefix isolates environments)."""
        return f"{self.topic_prefix}{logical}"

    def sqlalchemy_url(self) -> URL:
        """The database URL as a SQLAlchemy `URL` (its `repr` hides the password)."""
        return make_url(self.database_url.get_secret_value())

    def sqlalchemy_engine_options(self) -> dict[str, Any]:
        """Keyword arguments for `sqlalchemy.create_engine` matching these settings."""
        connect_args: dict[str, Any] = {"connect_timeout": max(1, int(self.kafka_timeout_s))}
        if self.database_schema:
            connect_args["options"] = f"-csearch_path={self.database_schema}"
        return {"pool_pre_ping": True, "connect_args": connect_args}

    def redis_url_value(self) -> str:
        return self.redis_url.get_secret_value()

    def safe_view(self) -> dict[str, str]:
        """Every setting as the text to show a person: secrets masked, URLs without passwords."""
        view: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in {"database_url", "redis_url", "schema_registry_url"} and value is not None:
                view[env_name(name)] = mask_url(value.get_secret_value())
            elif isinstance(value, SecretStr):
                view[env_name(name)] = "***"
            else:
                view[env_name(name)] = "" if value is None else str(value)
        return view

    def child_env(self, **extra: str) -> dict[str, str]:
        """Environment for a child process: this one's, plus these settings made explicit."""
        env = dict(os.environ)
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            env[env_name(name)] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        env.update(extra)
        return env


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; a malformed value raises `SettingsError` naming its variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        message = str(first["msg"]).removeprefix("Value error, ")
        # `from None`: pydantic's error echoes the input, which may be a secret (a URL's password).
        raise SettingsError(f"invalid setting {env_name(field)}: {message}") from None
