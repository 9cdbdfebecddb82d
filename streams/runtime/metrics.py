"""Prometheus metrics of one stream process (its own registry, served on the Faust web port).

Every sample carries ``service="stream-<name>"`` (`soma.observability.metrics.ServiceRegistry`); metrics about
events carry ``tenant`` (the record's tenant, ``unknown`` when it has none), always as their last label and
always through `tenant_child`, so the tenant series stay bounded (`streams.runtime.tenant_labels.TenantLabels`):
at most `SOMA_STREAMS_METRICS_MAX_TENANTS` tenants at once (more are counted as ``other``), and a tenant's
series are removed once it has been idle for `SOMA_STREAMS_METRICS_TENANT_IDLE_S` (`sweep_tenants`).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from soma.observability.auth_metrics import AuthMetrics
from soma.observability.metrics import ServiceRegistry
from streams.logic.policy import LEADER_CHANGE
from streams.logic.policy import RESULTS as POLICY_RESULTS
from streams.runtime.tenant_labels import TenantLabels


class StreamMetrics:
    def __init__(self, stream: str, *, tenant_idle_s: float = 3600.0, max_tenants: int = 1000) -> None:
        self.registry = ServiceRegistry(f"stream-{stream}")
        self.tenants = TenantLabels(tenant_idle_s, max_tenants)
        r = self.registry
        self.processed = Counter("soma_stream_events_total", "Input events processed", ["topic", "tenant"],
                                 registry=r)
        self.emitted = Counter("soma_stream_outputs_total", "Output events produced", ["topic", "tenant"],
                               registry=r)
        self.publish_failures = Counter(
            "soma_stream_publish_failures_total", "Output records the broker did not acknowledge", ["topic"],
            registry=r,
        )
        self.dead_letters = Counter("soma_stream_dead_letters_total", "Records sent to the DLQ",
                                    ["reason", "tenant"], registry=r)
        self.dlq_depth = Gauge("soma_dlq_depth", "Records retained in the DLQ topic (all streams)", registry=r)
        self.duplicates = Counter("soma_stream_duplicates_total", "Inputs skipped as already applied", registry=r)
        self.config_applied = Counter("soma_config_updates_applied_total", "Live config updates applied", registry=r)
        self.config_rejected = Counter(
            "soma_config_updates_rejected_total", "Live config updates rejected", ["name"], registry=r
        )
        self.ready = Gauge("soma_stream_ready", "1 when the worker is ready (not stalled)", registry=r)
        self.lag = Gauge("soma_stream_lag", "Sum of (end - committed) over assigned partitions", registry=r)
        self.consumer_lag = Gauge(
            "soma_stream_consumer_lag", "Records not yet committed (end - committed) per assigned source partition",
            ["topic", "partition"], registry=r,
        )
        # integrator
        self.leader_switches = Counter("soma_integrator_leader_switches_total", "Leader changes", ["tenant"],
                                       registry=r)
        self.vetoes = Counter("soma_integrator_vetoes_total", "Leader changes vetoed by policy", ["tenant"],
                              registry=r)
        self.entropy = Gauge("soma_integrator_softmax_entropy", "Entropy of the last frame (nats)", ["tenant"],
                             registry=r)
        self.auth = AuthMetrics(r, (LEADER_CHANGE,), POLICY_RESULTS)  # OPA decisions (soma_auth_*)
        self.frame_latency = Histogram(
            "soma_integrator_update_to_frame_seconds", "Predictor update occurred_at to frame emitted, by the tenant's"
            " applied sleep state", ["sleep_state"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.updates_skipped = Counter("soma_integrator_updates_skipped_total",
                                       "Updates consumed without a frame (ENABLE_COG_THREADS off, the tenant"
                                       " in freeze, or in deep with nothing learned yet)", ["tenant"],
                                       registry=r)
        # integrator: sleep (the owner of the transitions; streams.runtime.sleep_owner)
        self.sleep_state = Gauge("soma_sleep_state", "1 for the tenant's current sleep state (as written on cog.sleep)",
                                 ["state", "tenant"], registry=r)
        self.sleep_transitions = Counter("soma_sleep_transitions_total", "Sleep transitions written to cog.sleep",
                                         ["from", "to", "reason", "tenant"], registry=r)
        self.sleep_ignored = Counter("soma_sleep_requests_ignored_total",
                                     "Sleep requests that changed nothing, by why (disabled: ENABLE_SLEEP off)",
                                     ["why", "tenant"], registry=r)
        self.sleep_entered = Gauge("soma_sleep_entered_timestamp_seconds",
                                   "When the tenant entered its current sleep state (Unix time)", ["tenant"],
                                   registry=r)
        self.sleep_max_duration = Gauge("soma_sleep_max_duration_seconds", "The tenant's policy limit for its current"
                                        " sleep state (+Inf: awake or no limit)", ["tenant"], registry=r)
        # segmenter
        self.segments = Counter("soma_segmenter_segments_total", "Segments emitted", ["kind", "tenant"], registry=r)
        self.frames_skipped = Counter("soma_segmenter_frames_skipped_total",
                                      "Frames consumed without segmenting (ENABLE_COG_THREADS off)", ["tenant"],
                                      registry=r)
        self.segmenter_mode = Gauge("soma_segmenter_mode", "1 for the active mode", ["mode"], registry=r)
        # replicator
        self.replica_lag = Gauge("soma_replicator_lag_seconds", "now - occurred_at of the last applied write",
                                 ["tenant"], registry=r)
        self.db_retries = Counter("soma_replicator_db_retries_total", "Retries while PostgreSQL was down", registry=r)
        # tools
        self.tool_calls = Counter("soma_tools_calls_total", "Tool calls by status", ["tool", "status", "tenant"],
                                  registry=r)
        self._lag_series: set[tuple[str, str]] = set()

    def tenant_child(self, metric: Any, tenant: str | None, *labels: str) -> Any:
        """`metric.labels(*labels, <tenant label>)`: the series of a bounded tenant label, remembered for removal."""
        return self.tenants.child(metric, tenant, *labels)

    def sweep_tenants(self) -> list[str]:
        """Remove every series of the tenants idle longer than the idle time; the tenants removed."""
        return self.tenants.sweep()

    def set_consumer_lag(self, lags: dict[tuple[str, int], int]) -> None:
        """Per-partition lag of the current assignment; partitions no longer assigned are dropped."""
        current = {(topic, str(partition)) for topic, partition in lags}
        for gone in self._lag_series - current:
            self.consumer_lag.remove(*gone)
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)
        self._lag_series = current
        self.lag.set(sum(lags.values()))
