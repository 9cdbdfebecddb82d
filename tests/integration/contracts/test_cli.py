"""Event contracts against the real broker, through the terminal commands a person would type."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

from soma.clients import kafka_admin
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import EventConsumer, EventProducer
from soma.contracts.internal_topics import internal_specs
from soma.contracts.topics import ensure
from soma.settings import Settings, load_settings
from tests.support.procs import run_soma
from tests.support.samples import sample

CATALOG = load_catalog()


@pytest.fixture(scope="module")
def topics(settings: Settings) -> Settings:
    ensure(settings, CATALOG)
    return settings


def _consume(settings: Settings, topic: str, *extra: str, idle: float = 15.0) -> list[dict]:
    result = run_soma(settings, "consume", topic, "--from-beginning", "--idle-timeout", str(idle), *extra)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_topics_ensure_twice_is_harmless(settings: Settings) -> None:
    own = load_settings(topic_prefix=f"{settings.kafka.topic_prefix}ensure.", kafka_timeout_s=10)
    first = run_soma(own, "topics", "ensure", COLUMNS="200")
    assert first.returncode == 0, first.stderr
    internal = internal_specs(own, CATALOG)  # the streams' Faust changelog and leader topics
    assert first.stdout.count("created") == len(CATALOG.topics) + len(internal)
    second = run_soma(own, "topics", "ensure", COLUMNS="200")
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout
    assert second.stdout.count(" ok ") == len(CATALOG.topics) + len(internal)
    admin = kafka_admin(own)
    metadata = admin.list_topics(timeout=10)
    assert len(metadata.topics[own.topic_name("chat.messages")].partitions) == 3
    resource = ConfigResource(ResourceType.TOPIC, own.topic_name("config_updates"))
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["cleanup.policy"].value == "compact"


def test_drift_is_reported_and_left_alone(settings: Settings) -> None:
    own = load_settings(topic_prefix=f"{settings.kafka.topic_prefix}drift.", kafka_timeout_s=10)
    physical = own.topic_name("tool.results")
    admin = kafka_admin(own)  # keep a reference: the futures fail if the client is collected
    admin.create_topics([NewTopic(physical, num_partitions=1, replication_factor=1)])[physical].result(20)
    result = run_soma(own, "topics", "ensure")
    assert result.returncode == 2
    row = next(line for line in result.stdout.splitlines() if "tool.results" in line)
    assert "drift" in row
    assert "tool.results: drift: partitions 1 on the broker, 3 in the catalog" in result.stdout
    listed = run_soma(own, "topics", "list")
    assert "drift" in next(line for line in listed.stdout.splitlines() if "tool.results" in line)
    assert len(admin.list_topics(timeout=10).topics[physical].partitions) == 1


@pytest.mark.parametrize("topic", sorted(CATALOG.topics))
def test_every_topic_round_trips_through_the_cli(topics: Settings, topic: str) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    value = Codec(CATALOG, topics).to_json(topic, sample(topic, tenant=tenant))
    produced = run_soma(topics, "produce", topic, "--tenant", tenant, "--value-json", json.dumps(value))
    assert produced.returncode == 0, produced.stderr
    ack = json.loads(produced.stdout)
    assert ack["topic"] == topic
    assert ack["offset"] >= 0
    records = _consume(topics, topic, "--tenant", tenant, "--max-messages", "1", idle=30.0)
    assert len(records) == 1
    record = records[0]
    assert record["value"]["event_id"] == ack["event_id"]
    assert record["key"] == CATALOG.topic(topic).build_key(sample(topic, tenant=tenant))
    assert record["partition"] == ack["partition"]
    assert record["offset"] == ack["offset"]
    headers = record["headers"]
    assert headers["tenant"] == tenant
    assert headers["dedupe-key"] == ack["event_id"]
    assert headers["event-type"] == CATALOG.topic(topic).value_schema
    assert headers["traceparent"].startswith("00-")
    for name, expected in value.items():
        assert record["value"][name] == expected, name


def test_bad_input_is_one_line_naming_the_field_and_nothing_is_sent(topics: Settings, tmp_path: Path) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    good = sample("tool.results", tenant=tenant)
    bad = {**good, "status": "maybe"}
    cases = [
        (["tool.results", "--value-json", json.dumps(bad)],
         "soma: error: tool.results: field 'status': 'maybe' is not one of ok, error, timeout"),
        (["tool.results", "--value-json", json.dumps({k: v for k, v in good.items() if k != "call_id"})],
         "soma: error: tool.results: field 'call_id': missing (required, no default)"),
        (["tool.results", "--value-json", "{not json"], "soma: error: --value-json: not JSON"),
        (["tool.resluts", "--value-json", json.dumps(good)],
         "soma: error: unknown topic 'tool.resluts': not documented in topics.yaml"),
    ]
    lines = tmp_path / "events.jsonl"
    lines.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    cases.append((["tool.results", "--file", str(lines)], "soma: error: tool.results: field 'status'"))
    for args, message in cases:
        result = run_soma(topics, "produce", *args[:1], "--tenant", tenant, *args[1:])
        assert result.returncode == 1, args
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.strip().startswith(message), result.stderr
    assert _consume(topics, "tool.results", "--tenant", tenant, idle=4.0) == []


def test_tenant_mismatch_is_refused(topics: Settings) -> None:
    value = sample("memory.writes", tenant="tenant-a")
    result = run_soma(topics, "produce", "memory.writes", "--tenant", "tenant-b", "--value-json", json.dumps(value))
    assert result.returncode == 1
    assert "field 'tenant_id' is 'tenant-a' but the tenant is 'tenant-b'" in result.stderr


def test_python_api_round_trip_with_consumer_group(topics: Settings) -> None:
    codec = Codec(CATALOG, topics)
    producer = EventProducer(topics, CATALOG, codec)
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    sent = [producer.send("cog.predictor_updates", sample("cog.predictor_updates", tenant, n), tenant=tenant)
            for n in range(5)]
    group = f"test-{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(topics, CATALOG, codec, ["cog.predictor_updates"], group, from_beginning=True)
    seen = []
    for event in consumer.events(idle_timeout_s=15):
        if event.headers.get("tenant") == tenant:
            seen.append(event)
        if len(seen) == len(sent):
            break
    consumer.close()
    assert [e.value["event_id"] for e in seen] == [d.event_id for d in sent]
    assert {e.key for e in seen} == {tenant}
    assert all(e.error is None for e in seen)


def test_tenant_id_may_be_left_to_the_tenant_option(topics: Settings) -> None:
    """The README's example: no tenant_id, event_id or occurred_at in the JSON."""
    value = {"session_id": "s1", "sequence": 1, "role": "user", "content": "hi"}
    result = run_soma(topics, "produce", "chat.messages", "--tenant", "acme", "--value-json", json.dumps(value))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["key"] == "acme:s1"
