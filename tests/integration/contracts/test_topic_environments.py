"""`soma topics ensure` with an environment, against the real (single-broker) shared Kafka, in topics of
this run's own prefix: a replication factor the cluster cannot hold is refused before anything is
created; min.insync.replicas is set on existing topics; partitions grow only when asked (changelogs
with their source), never shrink."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from soma.clients import kafka_admin
from soma.contracts.catalog import CATALOG_FILE, load_catalog
from soma.contracts.internal_topics import changelog_topic
from soma.contracts.schemas import SCHEMA_DIR
from soma.contracts.topics import ensure
from soma.settings import Settings, load_settings
from tests.support.procs import run_soma, wait_for


def _prefixed(settings: Settings, name: str) -> Settings:
    return load_settings(topic_prefix=f"{settings.kafka.topic_prefix}{name}.", kafka_timeout_s=10)


def test_a_replication_factor_beyond_the_brokers_is_one_line_and_creates_nothing(settings: Settings) -> None:
    own = _prefixed(settings, "rf")
    result = run_soma(own, "topics", "ensure", SOMA_ENV="cluster3")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "environment 'cluster3' (SOMA_ENV): topic " in lines[0]
    assert "replication_factor 3 but the cluster at" in lines[0]
    assert "has 1 broker(s)" in lines[0]
    prefix = own.kafka.topic_prefix
    assert [t for t in kafka_admin(own).list_topics(timeout=10).topics if t.startswith(prefix)] == []
    unknown = run_soma(own, "topics", "ensure", SOMA_ENV="prdo")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == ("soma: error: SOMA_ENV='prdo': no such environment in topics.yaml"
                                      " (known: cluster3)")


def _min_isr(settings: Settings, physical: str) -> str:
    resource = ConfigResource(ResourceType.TOPIC, physical)
    admin = kafka_admin(settings)  # referenced until the result is in: a collected client fails its futures
    return str(admin.describe_configs([resource])[resource].result(10)["min.insync.replicas"].value)


def test_min_isr_is_set_and_partitions_grow_only_when_asked(settings: Settings, tmp_path: Path) -> None:
    own = _prefixed(settings, "grow")
    text = CATALOG_FILE.read_text()
    path = tmp_path / "topics.yaml"
    path.write_text(text.replace("\ntopics:", "\n  grow:\n    topics:\n"
                                 "      chat.messages: {partitions: 4, min_insync_replicas: 1}\n"
                                 "  shrink:\n    topics:\n      chat.messages: {partitions: 2}\n\ntopics:", 1))
    base = load_catalog(path, SCHEMA_DIR)
    assert {s.state for s in ensure(own, base)} == {"created"}
    chat, changelog = own.topic_name("chat.messages"), changelog_topic(own, "worker", "sessions")
    admin = kafka_admin(own)
    resource = ConfigResource(ResourceType.TOPIC, chat, incremental_configs=[
        ConfigEntry("min.insync.replicas", "2", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(10)
    wait_for(lambda: _min_isr(own, chat) == "2", timeout_s=30, what="min ISR 2 described")  # a config shows late

    # Without --grow-partitions: min ISR set, the partitions reported, nothing else changed.
    states = {s.topic: s for s in ensure(own, base.for_env("grow"))}
    assert states["chat.messages"].state == "drift"
    assert "min.insync.replicas set to 1" in states["chat.messages"].detail
    assert "partitions fewer than the catalog's 4" in states["chat.messages"].detail
    assert _min_isr(own, chat) == "1"

    def partitions(physical: str) -> int:
        return len(admin.list_topics(timeout=10).topics[physical].partitions)

    assert partitions(chat) == 3
    # With it: the source and the worker's changelog (co-partitioned) both grow.
    states = {s.physical: s for s in ensure(own, base.for_env("grow"), grow_partitions=True)}
    assert states[chat].state == "updated"
    assert states[changelog].state == "updated"
    # The broker's metadata shows added partitions a moment after the call returns.
    wait_for(lambda: (partitions(chat), partitions(changelog)) == (4, 4), timeout_s=30, what="4 partitions each")
    # Fewer than the broker holds: reported, never removed.
    states = {s.physical: s for s in ensure(own, base.for_env("shrink"), grow_partitions=True)}
    assert states[chat].state == "drift"
    assert "partitions 4 on the broker, 2 in the catalog (partitions are never removed)" in states[chat].detail
    assert partitions(chat) == 4
