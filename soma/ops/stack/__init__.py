"""The local development stack: Kafka (KRaft, from Maven Central; 1 or N brokers), PostgreSQL and Redis (Debian),
and optionally a schema registry (Apicurio, from Maven Central; `soma.ops.stack.registry`).

`up` starts what is not already answering at the configured addresses and waits for real
health (a Kafka round trip, `SELECT 1`, `PING`); `down` stops only what `up` started;
`status` checks all three (and the schema registry when one is configured). Services at
non-loopback addresses are only checked, never started.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from soma.errors import InfrastructureUnavailable, StackError
from soma.observability.health import CHECKS, Health
from soma.ops.stack.cluster import LocalCluster, managed_pids, stop_all
from soma.ops.stack.postgres import LocalPostgres
from soma.ops.stack.redis import LocalRedis
from soma.ops.stack.registry import LocalRegistry, registry_check
from soma.ops.stack.system import port_open
from soma.settings import Settings

Report = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    healthy: bool
    address: str
    detail: str
    managed_by: str


def _quiet(_: str) -> None:
    return None


def up(settings: Settings, report: Report = _quiet, timeout_s: float = 180.0) -> list[Health]:
    """Bring every service up and return their health once all three are healthy."""
    kafka = LocalCluster(settings)
    if kafka.closed_ports() and not (kafka.first.libs / ".complete").exists():
        report(f"kafka: fetching Apache Kafka {kafka.first.version} from Maven Central (once)")
    for node, pid in kafka.start():
        name = "broker" if len(kafka.nodes) == 1 else f"broker {node.node}/{len(kafka.nodes)}"
        report(f"kafka: starting {name} pid {pid} on {node.host}:{node.port} (log {node.log_file})")
    postgres = LocalPostgres(settings)
    if postgres.start():
        report(f"postgresql: started the local cluster on {postgres.host}:{postgres.port}")
    postgres.provision()
    redis = LocalRedis(settings)
    if redis.start():
        report(f"redis: started redis-server on {redis.host}:{redis.port}")
    started = time.monotonic()
    registry = _start_registry(settings, report)
    healths = wait_healthy(settings, kafka, timeout_s)
    if registry is not None:
        healths.append(registry.wait_healthy(max(1.0, timeout_s - (time.monotonic() - started))))
    return healths


def _start_registry(settings: Settings, report: Report) -> LocalRegistry | None:
    """With SOMA_STACK_REGISTRY=apicurio: start the registry unless its port answers already."""
    if settings.stack.registry == "none":
        return None
    registry = LocalRegistry(settings)
    if registry.daemon.pid() is not None:
        return registry
    if port_open(registry.host, registry.port):
        # Something else holds the port: use it if it speaks the Confluent API, else say so now.
        registry_check(registry.url, "stack_registry_port")
        return registry
    if not (registry.dist / ".complete").exists():
        report(f"schema-registry: fetching Apicurio Registry {registry.version} from Maven Central (once)")
    pid = registry.start()
    report(f"schema-registry: starting Apicurio pid {pid} on {registry.url} (log {registry.log_file})")
    return registry


def wait_healthy(settings: Settings, kafka: LocalCluster, timeout_s: float) -> list[Health]:
    deadline = time.monotonic() + timeout_s
    healthy: dict[str, Health] = {}
    last_error: dict[str, str] = {}
    while time.monotonic() < deadline:
        for name, check in CHECKS.items():
            if name in healthy:
                continue
            if name == "kafka":
                died = kafka.exited_early()
                if died:
                    raise StackError(f"kafka: the broker exited during start-up: {died}")
                closed = kafka.closed_ports()
                if closed:
                    last_error[name] = f"kafka: nothing listens on {', '.join(closed)} yet"
                    continue
                # Every node first: the round trip creates the health topic with as many replicas as it sees.
                missing = kafka.unregistered()
                if missing:
                    last_error[name] = f"kafka: broker(s) {', '.join(missing)} not in the cluster's metadata yet"
                    continue
            try:
                healthy[name] = check(settings)
            except InfrastructureUnavailable as exc:
                last_error[name] = str(exc)
        if len(healthy) == len(CHECKS):
            return [healthy[name] for name in CHECKS]
        time.sleep(1.0)
    pending = [last_error.get(name, name) for name in CHECKS if name not in healthy]
    raise StackError(f"not healthy after {timeout_s:.0f}s: {'; '.join(pending)}")


def status(settings: Settings) -> list[ServiceStatus]:
    kafka_pids = sorted(managed_pids(settings).values())
    redis_pid = LocalRedis(settings).daemon.pid()
    postgres_ours = LocalPostgres(settings).marker.exists()
    plural = "s" if len(kafka_pids) > 1 else ""
    managed = {
        "kafka": f"soma (pid{plural} {', '.join(map(str, kafka_pids))})" if kafka_pids else "external",
        "postgresql": "soma (pg_ctlcluster)" if postgres_ours else "external",
        "redis": f"soma (pid {redis_pid})" if redis_pid else "external",
    }
    rows = []
    for name, check in CHECKS.items():
        try:
            health = check(settings)
            rows.append(ServiceStatus(name, True, health.address, health.detail, managed[name]))
        except InfrastructureUnavailable as exc:
            rows.append(ServiceStatus(name, False, "-", str(exc), managed[name]))
    url = settings.schema_registry_url_value()
    if url is not None and not url.startswith("mock://"):  # mock://: confluent-kafka's in-process client
        registry_pid = LocalRegistry(settings).daemon.pid()
        ours = registry_pid is not None and url == settings.stack.local_registry_url
        owner = f"soma (pid {registry_pid})" if ours else "external"
        setting = "schema_registry_url" if settings.kafka.schema_registry_url is not None else "stack_registry_port"
        try:
            health = registry_check(url, setting)
            rows.append(ServiceStatus(health.service, True, health.address, health.detail, owner))
        except InfrastructureUnavailable as exc:
            rows.append(ServiceStatus("schema-registry", False, "-", str(exc), owner))
    return rows


def down(settings: Settings, report: Report = _quiet) -> None:
    """Stop what `up` started (by pid file or start marker), in reverse order."""
    if LocalRegistry(settings).stop():
        report("schema-registry: stopped")
    if LocalRedis(settings).stop():
        report("redis: stopped")
    if LocalPostgres(settings).stop():
        report("postgresql: stopped")
    stopped = stop_all(settings, grace_s=30)
    if stopped:
        report(f"kafka: stopped {', '.join(stopped)}")
