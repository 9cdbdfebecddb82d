"""Topic preflight: make the broker hold every catalog topic (and the streams' Faust topics) as the
environment asks, and report what cannot be changed in place.

`ensure` creates what is missing with the effective partitions, replication factor and configs
(`SOMA_ENV`'s overrides applied, see soma.contracts.environments). On an existing topic it sets
`min.insync.replicas` as asked, and raises the partition count only with `grow_partitions`
(`--grow-partitions`: a key may then map to another partition) and never lowers it; a different
replication factor, cleanup policy or retention is reported as drift and left alone (changing
them moves or may lose data: an operator's decision, e.g. `kafka-reassign-partitions`).
A replication factor larger than the cluster's broker count is refused before anything changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from soma.clients import kafka_admin
from soma.contracts.catalog import Catalog, TopicSpec
from soma.contracts.internal_topics import REPARTITION_SUFFIX, internal_specs
from soma.errors import CatalogError, InfrastructureUnavailable
from soma.settings import Settings, env_name

State = Literal["created", "ok", "updated", "drift", "missing", "undocumented"]
MIN_ISR = "min.insync.replicas"


@dataclass(frozen=True)
class TopicState:
    topic: str
    physical: str
    state: State
    detail: str = ""


@dataclass(frozen=True)
class BrokerTopic:
    partitions: int
    replication_factor: int


def desired_config(spec: TopicSpec, internal: bool = False) -> dict[str, str]:
    """The topic-level broker configs the catalog fixes for `spec` (Faust's own topics: cleanup policy only)."""
    config = {"cleanup.policy": spec.cleanup_policy}
    if not internal:
        config["retention.ms"] = "-1" if spec.retention_ms is None else str(spec.retention_ms)
    if spec.min_insync_replicas is not None:
        config[MIN_ISR] = str(spec.min_insync_replicas)
    return config


@dataclass(frozen=True)
class _Plan:
    """What `ensure` would do to one existing topic."""

    drift: list[str]
    add_partitions: int | None = None
    set_min_isr: str | None = None


def _plan(admin: AdminClient, physical: str, spec: TopicSpec, found: BrokerTopic, timeout: float,
          internal: bool) -> _Plan:
    drift: list[str] = []
    grow = None
    if found.partitions < spec.partitions:
        grow = spec.partitions
    elif found.partitions > spec.partitions:
        drift.append(f"partitions {found.partitions} on the broker, {spec.partitions} in the catalog"
                     " (partitions are never removed)")
    if found.replication_factor != spec.replication_factor:
        drift.append(f"replication factor {found.replication_factor} on the broker, {spec.replication_factor} in "
                     "the catalog (not changed in place: reassign the replicas, e.g. kafka-reassign-partitions)")
    resource = ConfigResource(ResourceType.TOPIC, physical)
    configs = admin.describe_configs([resource])[resource].result(timeout=timeout)
    set_min_isr = None
    for name, wanted in desired_config(spec, internal).items():
        actual = configs[name].value if name in configs else None
        if actual == wanted:
            continue
        if name == MIN_ISR:
            set_min_isr = wanted
        else:
            drift.append(f"{name}={actual} on the broker, {wanted} in the catalog")
    return _Plan(drift, grow, set_min_isr)


def _broker_topics(admin: AdminClient, settings: Settings) -> tuple[dict[str, BrokerTopic], int]:
    """The broker's topics and its broker count."""
    try:
        metadata = admin.list_topics(timeout=settings.kafka.timeout_s)
    except KafkaException as exc:
        raise InfrastructureUnavailable(
            f"kafka: unreachable at {settings.kafka.bootstrap} ({env_name('kafka_bootstrap')}): {exc.args[0]}"
        ) from exc
    topics = {}
    for name, topic in metadata.topics.items():
        replicas = max((len(p.replicas) for p in topic.partitions.values()), default=0)
        topics[name] = BrokerTopic(len(topic.partitions), replicas)
    return topics, len(metadata.brokers)


def wanted(settings: Settings, catalog: Catalog) -> dict[str, tuple[str, TopicSpec, bool]]:
    """physical name -> (name to show, effective spec, is a Faust internal topic)."""
    found = {settings.topic_name(spec.name): (spec.name, spec, False) for spec in catalog.topics.values()}
    prefix = settings.kafka.topic_prefix
    for physical, spec in internal_specs(settings, catalog).items():
        found[physical] = (physical.removeprefix(prefix), spec, True)
    return found


def check_brokers(catalog: Catalog, specs: dict[str, tuple[str, TopicSpec, bool]], brokers: int,
                  settings: Settings) -> None:
    """Refuse (one line naming environment, topic and field) a replication factor the cluster cannot hold."""
    for shown, spec, _ in specs.values():
        if spec.replication_factor > brokers:
            env = f"environment {catalog.env!r} ({env_name('env')})" if catalog.env else "no environment"
            raise CatalogError(
                f"{catalog.path.name}: {env}: topic {shown!r}: replication_factor {spec.replication_factor} "
                f"but the cluster at {settings.kafka.bootstrap} has {brokers} broker(s)"
            )


def compare(settings: Settings, catalog: Catalog) -> list[TopicState]:
    """Catalog vs broker, changing nothing: ok, drift, missing, and prefixed topics the catalog lacks."""
    return [state for state, _ in _compare(settings, catalog, kafka_admin(settings))[0]]


def _compare(settings: Settings, catalog: Catalog, admin: AdminClient
             ) -> tuple[list[tuple[TopicState, _Plan | None]], int]:
    on_broker, brokers = _broker_topics(admin, settings)
    specs = wanted(settings, catalog)
    states: list[tuple[TopicState, _Plan | None]] = []
    for physical, (shown, spec, internal) in specs.items():
        if physical not in on_broker:
            states.append((TopicState(shown, physical, "missing"), None))
            continue
        plan = _plan(admin, physical, spec, on_broker[physical], settings.kafka.timeout_s, internal)
        pending = [*plan.drift]
        if plan.add_partitions:
            pending.append(f"partitions {on_broker[physical].partitions} on the broker, {spec.partitions} in the "
                           "catalog (`soma topics ensure --grow-partitions` adds them)")
        if plan.set_min_isr:
            pending.append(f"{MIN_ISR} not {plan.set_min_isr}")
        states.append((TopicState(shown, physical, "drift" if pending else "ok", "; ".join(pending)), plan))
    prefix = settings.kafka.topic_prefix
    for physical in sorted(on_broker):
        if not physical.startswith(prefix) or physical in specs:
            continue
        logical = physical.removeprefix(prefix)
        if logical.startswith("_"):  # broker and health internals (__consumer_offsets, __soma_health)
            continue
        if logical.endswith(REPARTITION_SUFFIX):  # a group_by's topic: only its replication can be checked
            rf = internal_rf(catalog, specs)
            found = on_broker[physical].replication_factor
            detail = "" if found == rf else f"replication factor {found} on the broker, {rf} in the catalog"
            states.append((TopicState(logical, physical, "drift" if detail else "ok", detail), None))
        else:
            states.append((TopicState(logical, physical, "undocumented", "not in topics.yaml"), None))
    return states, brokers


def internal_rf(catalog: Catalog, specs: dict[str, tuple[str, TopicSpec, bool]]) -> int:
    return max((spec.replication_factor for _, spec, internal in specs.values() if internal), default=1)


def ensure(settings: Settings, catalog: Catalog, grow_partitions: bool = False) -> list[TopicState]:
    """Create the missing topics, set min.insync.replicas (and with `grow_partitions` add partitions) where
    asked; report the rest as ok or drift. Safe to run any number of times."""
    admin = kafka_admin(settings)
    specs = wanted(settings, catalog)
    compared, brokers = _compare(settings, catalog, admin)
    check_brokers(catalog, specs, brokers, settings)
    states: dict[str, TopicState] = {}
    for state, plan in compared:
        if state.state == "undocumented":
            continue
        if state.state == "missing":
            states[state.physical] = _create(admin, settings, state, specs[state.physical])
        elif plan is not None and ((plan.add_partitions and grow_partitions) or plan.set_min_isr):
            states[state.physical] = _update(admin, settings, state, plan, grow_partitions)
        else:
            states[state.physical] = state
    return list(states.values())


def _create(
    admin: AdminClient, settings: Settings, state: TopicState, entry: tuple[str, TopicSpec, bool]
) -> TopicState:
    _, spec, internal = entry
    new = NewTopic(state.physical, num_partitions=spec.partitions, replication_factor=spec.replication_factor,
                   config=desired_config(spec, internal))
    future = admin.create_topics([new], operation_timeout=settings.kafka.timeout_s)[state.physical]
    try:
        future.result(timeout=settings.kafka.timeout_s * 2)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another `ensure` (or Faust) won the race: fine
            raise InfrastructureUnavailable(f"kafka: creating {state.physical} failed: {exc.args[0]}") from exc
        return TopicState(state.topic, state.physical, "ok", "created concurrently")
    min_isr = f", min ISR {spec.min_insync_replicas}" if spec.min_insync_replicas else ""
    return TopicState(state.topic, state.physical, "created",
                      f"{spec.partitions} partitions, RF {spec.replication_factor}{min_isr}, {spec.cleanup_policy}")


def _update(admin: AdminClient, settings: Settings, state: TopicState, plan: _Plan, grow: bool) -> TopicState:
    done: list[str] = []
    left = [*plan.drift]
    timeout = settings.kafka.timeout_s
    try:
        if plan.add_partitions and not grow:
            left.append(f"partitions fewer than the catalog's {plan.add_partitions}"
                        " (`soma topics ensure --grow-partitions` adds them)")
        elif plan.add_partitions:
            new = NewPartitions(state.physical, plan.add_partitions)
            admin.create_partitions([new], operation_timeout=timeout)[state.physical].result(timeout=timeout * 2)
            done.append(f"partitions raised to {plan.add_partitions} (keys added later may map to other partitions)")
        if plan.set_min_isr:
            resource = ConfigResource(ResourceType.TOPIC, state.physical, incremental_configs=[
                ConfigEntry(MIN_ISR, plan.set_min_isr, incremental_operation=AlterConfigOpType.SET)])
            admin.incremental_alter_configs([resource])[resource].result(timeout=timeout * 2)
            done.append(f"{MIN_ISR} set to {plan.set_min_isr}")
    except KafkaException as exc:
        raise InfrastructureUnavailable(f"kafka: changing {state.physical} failed: {exc.args[0]}") from exc
    if left:
        return TopicState(state.topic, state.physical, "drift", "; ".join([*done, *left]))
    return TopicState(state.topic, state.physical, "updated", "; ".join(done))
