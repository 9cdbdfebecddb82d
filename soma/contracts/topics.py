"""Topic preflight: make the broker hold every catalog topic, and report drift without changing data.

`ensure` creates what is missing with the catalog's partitions and configs; a topic that
exists with other partitions or another cleanup policy / retention is reported as drift and
left alone (changing either can lose or reorder data: that is an operator's decision).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from soma.clients import kafka_admin
from soma.contracts.catalog import Catalog, TopicSpec
from soma.errors import InfrastructureUnavailable
from soma.settings import Settings, env_name

State = Literal["created", "ok", "drift", "missing", "undocumented"]


@dataclass(frozen=True)
class TopicState:
    topic: str
    physical: str
    state: State
    detail: str = ""


def desired_config(spec: TopicSpec) -> dict[str, str]:
    """The topic-level broker configs the catalog fixes for `spec`."""
    retention = "-1" if spec.retention_ms is None else str(spec.retention_ms)
    return {"cleanup.policy": spec.cleanup_policy, "retention.ms": retention}


def _drift(admin: AdminClient, physical: str, spec: TopicSpec, partitions: int, timeout: float) -> list[str]:
    found: list[str] = []
    if partitions != spec.partitions:
        found.append(f"partitions {partitions} on the broker, {spec.partitions} in the catalog")
    resource = ConfigResource(ResourceType.TOPIC, physical)
    configs = admin.describe_configs([resource])[resource].result(timeout=timeout)
    for name, wanted in desired_config(spec).items():
        actual = configs[name].value if name in configs else None
        if actual != wanted:
            found.append(f"{name}={actual} on the broker, {wanted} in the catalog")
    return found


def _broker_topics(admin: AdminClient, settings: Settings) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=settings.kafka.timeout_s)
    except KafkaException as exc:
        raise InfrastructureUnavailable(
            f"kafka: unreachable at {settings.kafka.bootstrap} ({env_name('kafka_bootstrap')}): {exc.args[0]}"
        ) from exc
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def compare(settings: Settings, catalog: Catalog) -> list[TopicState]:
    """Catalog vs broker, changing nothing: ok, drift, missing, and prefixed topics the catalog lacks."""
    admin = kafka_admin(settings)
    on_broker = _broker_topics(admin, settings)
    states = []
    for spec in catalog.topics.values():
        physical = settings.topic_name(spec.name)
        if physical not in on_broker:
            states.append(TopicState(spec.name, physical, "missing"))
            continue
        drift = _drift(admin, physical, spec, on_broker[physical], settings.kafka.timeout_s)
        states.append(TopicState(spec.name, physical, "drift" if drift else "ok", "; ".join(drift)))
    documented = {settings.topic_name(name) for name in catalog.topics}
    for physical in sorted(on_broker):
        if not physical.startswith(settings.kafka.topic_prefix) or physical in documented:
            continue
        logical = physical.removeprefix(settings.kafka.topic_prefix)
        if not logical.startswith("_"):  # broker and health internals (__consumer_offsets, __soma_health)
            states.append(TopicState(logical, physical, "undocumented", "not in topics.yaml"))
    return states


def ensure(settings: Settings, catalog: Catalog) -> list[TopicState]:
    """Create the missing catalog topics; report the others as ok or drift. Safe to run any number of times."""
    admin = kafka_admin(settings)
    states = {state.topic: state for state in compare(settings, catalog) if state.state != "undocumented"}
    missing = [catalog.topics[name] for name, state in states.items() if state.state == "missing"]
    if not missing:
        return list(states.values())
    new_topics = [
        NewTopic(
            settings.topic_name(spec.name),
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            config=desired_config(spec),
        )
        for spec in missing
    ]
    futures = admin.create_topics(new_topics, operation_timeout=settings.kafka.timeout_s)
    for spec in missing:
        physical = settings.topic_name(spec.name)
        try:
            futures[physical].result(timeout=settings.kafka.timeout_s * 2)
            states[spec.name] = TopicState(
                spec.name, physical, "created", f"{spec.partitions} partitions, {spec.cleanup_policy}"
            )
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another `ensure` won the race: fine
                raise InfrastructureUnavailable(f"kafka: creating {physical} failed: {exc.args[0]}") from exc
            states[spec.name] = TopicState(spec.name, physical, "ok", "created concurrently")
    return list(states.values())
