"""The settings sections of the components: admin API, relay, streams (and their live part),
supervisor, telemetry. See soma/settings/sections.py for how a field finds its variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from soma.errors import SettingsError
from soma.settings.sections import LIVE, Section, own
from soma.settings.tokens import TokenGrant, parse_tokens
from soma.settings.values import Duration, ObjectRefs, TenantCounts, TenantRates, TenantSeconds, env_name
from soma.sleep.policy import SleepPolicy


class AdminSettings(Section):
    """The admin API (outbox inspection and replay); its tokens are parsed in soma/settings/tokens.py."""

    model_config = SettingsConfigDict(env_prefix="SOMA_ADMIN_")

    tokens: SecretStr | None = Field(
        None,
        description=(
            "Bearer tokens of the admin API and their scopes (secret): a JSON object "
            '{"<token>": "admin" | "tenant:<id>" | {"scope": "...", "name": "..."}} or a comma list '
            "token=scope. Unset: `soma admin serve` refuses to start."
        ),
    )
    host: str = Field("127.0.0.1", description="Address `soma admin serve` listens on.")
    port: int = Field(8081, ge=1, le=65535, description="Port `soma admin serve` listens on.")
    replay_max_rows: int = Field(
        100_000, ge=1, description="Most rows one replay may copy (a larger filter is refused, nothing written)."
    )
    shutdown_timeout_s: float = Field(
        10.0, gt=0, description="Grace for in-flight admin requests when the server stops, then it exits."
    )
    live_cache_s: float = Field(
        5.0, ge=0, le=3600,
        description="How long the admin API reuses the live settings it read from config_updates (ENABLE_SLEEP,"
        " SLEEP_POLICY) before reading the topic again (0: read on every request).",
    )
    sleep_wait_max_s: float = Field(
        30.0, gt=0, le=300,
        description="Cap on a sleep_mode request's wait_s: the longest it waits for the integrator's transition.",
    )
    util_sleep_max_s: float = Field(
        10.0, gt=0, le=60, description="Cap on POST /admin/util/sleep: the longest a call sleeps (sync or async)."
    )
    util_sleep_rate_per_s: float = Field(
        1.0, gt=0, le=1000, description="POST /admin/util/sleep calls per second per token (token bucket refill)."
    )
    util_sleep_burst: int = Field(
        5, ge=1, le=10_000, description="POST /admin/util/sleep calls a token may make at once (token bucket size)."
    )

    def grants(self) -> tuple[TokenGrant, ...]:
        """The parsed tokens; unset or malformed is a one-line `SettingsError` naming SOMA_ADMIN_TOKENS."""
        variable = env_name("admin_tokens")
        if self.tokens is None or not self.tokens.get_secret_value().strip():
            raise SettingsError(f"{variable} is not set: the admin API has no anonymous access")
        try:
            return parse_tokens(self.tokens.get_secret_value())
        except ValueError as exc:
            raise SettingsError(f"invalid setting {variable}: {exc}") from None


class RelaySettings(Section):
    """The outbox relay."""

    model_config = SettingsConfigDict(env_prefix="SOMA_OUTBOX_RELAY_")

    batch_size: int = Field(1000, ge=1, le=50_000, description="Most rows one relay claim takes (over all tenants).")
    tenant_quota: int = Field(
        100, ge=1, description="Rows per tenant per round-robin round of a claim (the fair share unit)."
    )
    tenant_quotas: TenantCounts = Field(
        default_factory=dict,
        description="Per-tenant quota overrides as tenant=rows,tenant=rows (a weight of that tenant's share).",
    )
    pipeline_depth: int = Field(
        4, ge=1, le=64, description="Claimed batches in flight at once (each holds its rows locked until acked)."
    )
    poll_min_s: float = Field(
        0.002, gt=0, description="--drain: first wait after an empty claim while due rows are locked elsewhere."
    )
    poll_max_s: float = Field(
        0.2, gt=0, description="Longest wait for commits in progress before the relay idles; --drain poll cap."
    )
    idle_timeout_s: float = Field(
        5.0, gt=0, description="Longest idle wait for a NOTIFY before the relay looks anyway (retries, other relays)."
    )
    delivery_timeout_s: float = Field(
        30.0, gt=0, description="Broker acknowledgement deadline per record (librdkafka message.timeout.ms)."
    )
    retry_base_s: float = Field(
        1.0, gt=0, description="Backoff after a row's first failed attempt; doubles per attempt, with jitter."
    )
    retry_max_s: float = Field(300.0, gt=0, description="Cap of the retry backoff.")
    max_attempts: int = Field(
        10, ge=1, description="Attempts after which a failing row is parked as dead with its last error."
    )
    circuit_failures: int = Field(
        5, ge=1, description="Consecutive failed deliveries of one tenant that open its circuit."
    )
    circuit_failures_by_tenant: TenantCounts = Field(
        default_factory=dict, description="Per-tenant circuit thresholds as tenant=failures,tenant=failures."
    )
    circuit_reset_s: float = Field(
        30.0, gt=0, description="Seconds an open circuit waits before one half-open probe row."
    )
    circuit_reset_s_by_tenant: TenantSeconds = Field(
        default_factory=dict, description="Per-tenant circuit reset intervals as tenant=seconds,tenant=seconds."
    )
    tenant_rate: float = Field(
        0.0, ge=0, le=1_000_000,
        description="Rows per second each tenant may have published (a token bucket per tenant; 0: unlimited). "
        "A tenant over it waits: its rows stay pending, nothing is dropped or failed.",
    )
    tenant_rates: TenantRates = Field(
        default_factory=dict,
        description="Per-tenant rate overrides as tenant=rows_per_s,tenant=rows_per_s (0: that tenant unlimited).",
    )
    tenant_rate_burst_s: float = Field(
        1.0, gt=0, le=3600,
        description="A rate-limited tenant's bucket holds this many seconds of its rate (at least 1 row): the "
        "most it publishes at once after a quiet spell.",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address of the relay's Prometheus /metrics and /healthz endpoint."
    )
    metrics_port: int = Field(
        9465, ge=0, le=65535, description="Port of the relay's /metrics and /healthz (0: any free port, logged)."
    )
    gauge_interval_s: float = Field(
        5.0, gt=0, description="How often the relay recounts the pending, oldest-age and dead-rows gauges."
    )
    tenant_idle_s: float = Field(
        3600.0, gt=0,
        description="A tenant with no rows waiting or dead and no delivery for this long loses its metric series "
        "and circuit (bounds the relay's per-tenant state).",
    )
    # Retention (outbox/retention.py): shared by the relay's pruner and `soma outbox prune`.
    retention: Duration = Field(
        7 * 86400.0, validation_alias=own("outbox_retention"),
        description="Sent rows are deleted this long after they were sent (7d, 12h, 90s...; off: kept forever). "
        "Also the dedupe window: a (tenant, dedupe key) may be written again once its sent row is gone.",
    )
    dead_retention: Duration = Field(
        None, validation_alias=own("outbox_dead_retention"),
        description="Dead rows are deleted this long after they were created (off: kept until an operator "
        "deletes them; they are what replay of failures works from).",
    )
    prune_interval_s: float = Field(
        300.0, gt=0, description="How often the relay runs a prune (coarse: each run catches up within its budget)."
    )
    prune_batch: int = Field(
        1000, ge=1, le=50_000, description="Most rows one prune transaction deletes (short transactions, short locks)."
    )
    prune_budget_s: float = Field(
        10.0, gt=0, description="Longest a relay prune run goes on; the rest waits for the next run."
    )
    table_metrics_interval_s: float = Field(
        60.0, gt=0, description="How often the relay refreshes outbox_table_rows and outbox_table_bytes."
    )


class LiveSettings(Section):
    """The stream settings that may change while a process runs (each field marked `LIVE`)."""

    model_config = SettingsConfigDict(env_prefix="SOMA_")

    enable_cog_threads: bool = Field(
        False, json_schema_extra=LIVE,
        description="Live. Gates integrator and segmenter: off, they consume and commit but emit nothing.",
    )
    integrator_alpha: float = Field(
        0.5, gt=0, le=1, json_schema_extra=LIVE,
        description="Live. EMA smoothing of predictor confidences (1 = latest value only).",
    )
    integrator_temperature: float = Field(
        1.0, gt=0, le=1e6, json_schema_extra=LIVE,
        description="Live. Softmax temperature over the smoothed confidences.",
    )
    opa_fail_mode: Literal["open", "closed"] = Field(
        "open", json_schema_extra=LIVE,
        description="Live. When OPA gives no boolean answer (unreachable, too slow, policy undefined): open allows"
        " the change, closed keeps the old leader.",
    )
    opa_timeout_s: float = Field(
        1.0, gt=0, le=60, json_schema_extra=LIVE, description="Live. Deadline of one OPA decision call."
    )
    opa_cache_ttl_s: float = Field(
        5.0, ge=0, le=3600, json_schema_extra=LIVE,
        description="Live. How long OPA's answer for one tenant's change from one leader to another is reused;"
        " 0: OPA is asked for every leader change.",
    )
    segmenter_mode: Literal["threshold", "hmm"] = Field(
        "threshold", json_schema_extra=LIVE,
        description="Live. Boundary detection: dwell/threshold rules, or a two-state HMM (Viterbi).",
    )
    segmenter_dwell_frames: int = Field(
        3, ge=1, le=10_000, json_schema_extra=LIVE,
        description="Live. Frames a new leader must hold before a leader_change boundary.",
    )
    segmenter_drop_threshold: float = Field(
        0.3, gt=0, le=1, json_schema_extra=LIVE,
        description="Live. Drop of the leader's weight between frames that is a boundary.",
    )
    segmenter_hmm_enter_p: float = Field(
        0.05, gt=0, lt=1, json_schema_extra=LIVE, description="Live. HMM transition probability steady -> boundary."
    )
    segmenter_hmm_exit_p: float = Field(
        0.7, gt=0, lt=1, json_schema_extra=LIVE, description="Live. HMM transition probability boundary -> steady."
    )
    segmenter_hmm_emit_boundary: float = Field(
        0.9, gt=0, lt=1, json_schema_extra=LIVE,
        description="Live. HMM probability of a change signal in the boundary state.",
    )
    segmenter_hmm_emit_steady: float = Field(
        0.1, gt=0, lt=1, json_schema_extra=LIVE,
        description="Live. HMM probability of a change signal in the steady state.",
    )
    segmenter_hmm_window: int = Field(
        16, ge=2, le=1000, json_schema_extra=LIVE, description="Live. Frames the HMM's Viterbi pass looks back over."
    )
    enable_sleep: bool = Field(
        False, json_schema_extra=LIVE,
        description="Live. Cognitive sleep: off, the streams ignore cog.sleep and sleep requests, and the sleep"
        " endpoints answer 409.",
    )
    sleep_policy: SleepPolicy = Field(
        default_factory=SleepPolicy, json_schema_extra=LIVE,
        description="Live, per tenant. The sleep policy as a JSON object: per state (awake, light, deep, freeze)"
        " eta, temperature, dwell_frames, drop_threshold, max_duration_s; schedule windows; wake_on_traffic;"
        " circuit_sleep; default_ttl_s (docs/sleep.md).",
    )
    tools_concurrency: int = Field(
        8, ge=1, le=1000, json_schema_extra=LIVE, description="Live. Tool calls running at once per tools process."
    )
    relay_tenant_rate: float = Field(
        -1.0, ge=-1, le=1_000_000, json_schema_extra=LIVE,
        description="Live, per tenant. The relay's rows/s for the tenant (0: unlimited); below 0: the relay's static"
        " SOMA_OUTBOX_RELAY_TENANT_RATE[S] decide. A tenant-scoped value beats every static one; a global one"
        " beats only the static default.",
    )


class StreamsSettings(Section):
    """The Faust stream processes in streams/."""

    model_config = SettingsConfigDict(env_prefix="SOMA_STREAMS_")

    web_host: str = Field("127.0.0.1", description="Address of every stream's web port (/metrics, /ready).")
    web_port_base: int = Field(
        6100, ge=1, le=65000,
        description="Web port of the worker; tools, integrator, segmenter, replicator use base+1 .. base+4.",
    )
    stall_after_s: float = Field(
        60.0, gt=0, description="Readiness fails when committed offsets have not advanced this long while records wait."
    )
    session_timeout_s: float = Field(
        30.0, ge=6, le=300,
        description="Consumer group session timeout: how long a killed worker's partitions wait before reassignment.",
    )
    dedupe_window: int = Field(
        256, ge=1, le=100_000, description="Recent input event ids kept per state key to drop duplicates."
    )
    metrics_tenant_idle_s: float = Field(
        3600.0, gt=0,
        description="A tenant's metric series in a stream are removed after it has been idle this long.",
    )
    metrics_max_tenants: int = Field(
        1000, ge=1, le=100_000,
        description="Most tenants with their own metric series in one stream process; more are counted as other.",
    )
    integrator_frame_ttl_s: int = Field(
        3600, ge=1, validation_alias=own("integrator_frame_ttl_s"),
        description="TTL of the global_frame:{tenant} key the integrator writes to Redis.",
    )
    opa_url: str | None = Field(
        None, validation_alias=own("opa_url"),
        description="OPA base URL (http://host:port); set: leader changes are checked with OPA.",
    )
    opa_policy_path: str = Field(
        "soma/leader/allow", validation_alias=own("opa_policy_path"),
        description="OPA data path queried for a leader change (POST /v1/data/<path>).",
    )
    tools_max_timeout_s: float = Field(
        30.0, gt=0, validation_alias=own("tools_max_timeout_s"),
        description="Cap on a tool request's timeout_ms (a request cannot ask for longer).",
    )
    tools_plugins: ObjectRefs = Field(
        (), validation_alias=own("tools_plugins"),
        description="Extra tools: comma list of module:function, each called with the registry to register.",
    )
    worker_responder: str = Field(
        "", validation_alias=own("worker_responder"),
        description="module:attribute of the responder producing assistant messages; empty: no replies.",
    )
    replicator_retry_base_s: float = Field(
        0.5, gt=0, validation_alias=own("replicator_retry_base_s"),
        description="First backoff of the replicator while PostgreSQL is unavailable (doubles).",
    )
    replicator_retry_max_s: float = Field(
        10.0, gt=0, validation_alias=own("replicator_retry_max_s"), description="Cap of that backoff."
    )
    live: LiveSettings = Field(default_factory=LiveSettings, description="The live-changeable part.")


class SupervisorSettings(Section):
    """The supervisor of `soma up`."""

    model_config = SettingsConfigDict(env_prefix="SOMA_SUPERVISOR_")

    stop_grace_s: float = Field(
        20.0, gt=0, le=600,
        description="Grace for all supervised children together to exit after SIGTERM, then SIGKILL.",
    )
    backoff_base_s: float = Field(
        1.0, gt=0, description="Delay before the first restart of a crashed child (doubles per crash in a row)."
    )
    backoff_max_s: float = Field(30.0, gt=0, description="Cap of the restart delay.")
    backoff_reset_s: float = Field(
        60.0, gt=0, description="A child that stayed up this long restarts after the base delay again."
    )
    ready_timeout_s: float = Field(
        300.0, gt=0, description="How long `soma up --detach` waits for every component to be ready."
    )
    poll_s: float = Field(
        1.0, gt=0, le=60,
        description="How often the supervisor probes the /readyz of children starting or not ready.",
    )
    ready_poll_s: float = Field(
        10.0, gt=0, le=60,
        description="How often it probes a ready child's /readyz (a stall restart waits for the next probe), "
        "and rewrites the state file when nothing changed.",
    )


class TelemetrySettings(Section):
    """What every process tells people: log lines, traces (OpenTelemetry), health endpoints."""

    model_config = SettingsConfigDict(env_prefix="SOMA_OTEL_")

    log_format: Literal["json", "text"] = Field(
        "json", validation_alias=own("log_format"),
        description="Log lines of every process: one JSON object per line, or text for people at a terminal.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=own("log_level"),
        description="Least severe level a process logs (root logger; libraries included).",
    )
    health_check_timeout_s: float = Field(
        1.0, gt=0, le=30, validation_alias=own("health_check_timeout_s"),
        description="Deadline of one dependency check behind a /readyz endpoint.",
    )
    health_cache_s: float = Field(
        1.5, ge=0, le=60, validation_alias=own("health_cache_s"),
        description="How long a /readyz result is reused before the checks run again.",
    )
    traces_exporter: Literal["none", "console", "otlp", "jsonl"] = Field(
        "none",
        description=(
            "Where spans go: none (off, no cost), console (stdout), otlp (OTLP/HTTP to the endpoint below), "
            "jsonl (one JSON span per line to SOMA_OTEL_TRACES_FILE)."
        ),
    )
    exporter_otlp_endpoint: str = Field(
        "http://127.0.0.1:4318",
        description="OTLP/HTTP collector base URL (/v1/traces is appended) for the otlp exporter.",
    )
    traces_file: Path | None = Field(
        None, description="File of the jsonl exporter; {service} in it becomes the process's service name."
    )
    service_prefix: str = Field(
        "soma-", description="Prefix of every process's service.name (soma-relay, soma-worker, soma-cli, ...)."
    )
    traces_sample_ratio: float = Field(
        1.0, ge=0, le=1,
        description="Share of new traces sampled (parent-based: a hop follows its upstream's decision).",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value
