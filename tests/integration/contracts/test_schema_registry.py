"""The Confluent wire format, one contract suite against confluent-kafka's `mock://` client and a real
Apicurio Registry (its Confluent API), the latter fetched from Maven Central and started here.

The Apicurio case starts the registry the local stack would (`soma.ops.stack.registry`) on a free
port, with its pid file and log in a temporary folder, and stops it by pid at the end; the download
(once per state folder, about 150 MB) is cached in the stack's state folder. The stack's own registry
is used instead when it runs one (``SOMA_STACK_REGISTRY=apicurio``).
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from soma.contracts.catalog import CATALOG_FILE, load_catalog
from soma.contracts.codec import Codec, registry_text
from soma.contracts.events import EventConsumer, EventProducer
from soma.contracts.schemas import SCHEMA_DIR
from soma.contracts.topics import ensure
from soma.errors import EventValidationError, InfrastructureUnavailable
from soma.ops.stack.registry import LocalRegistry, registry_check
from soma.settings import Settings
from tests.support.samples import sample

CATALOG = load_catalog()
START_TIMEOUT_S = 240.0  # a cold JVM on a busy two-core machine; about 10 s when idle


@dataclass(frozen=True)
class Registry:
    kind: str
    url: str
    client: Callable[[], Any]  # a client for a new reader: the same one for mock://, a fresh one for a server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def started(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry | None]:
    """An Apicurio Registry started for this module (None: the stack's own is used)."""
    if stack.stack.registry == "apicurio":
        registry_check(stack.stack.local_registry_url)  # the stack's own: it must answer
        yield None
        return
    local = LocalRegistry(stack.replace(stack_registry_port=_free_port()), run_dir=tmp_path_factory.mktemp("registry"))
    began = time.monotonic()
    fetched = local.fetch()
    fetch_s = time.monotonic() - began
    local.start()
    try:
        local.wait_healthy(START_TIMEOUT_S)
        print(f"apicurio {local.version}: fetch {fetch_s:.1f}s (downloaded: {fetched}), "
              f"ready {time.monotonic() - began - fetch_s:.1f}s after start")
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def apicurio(started: LocalRegistry | None, stack: Settings) -> str:
    """The URL of a running Apicurio Registry's Confluent API."""
    return started.url if started is not None else stack.stack.local_registry_url


@pytest.fixture(params=["mock", "apicurio"])
def registry(request: pytest.FixtureRequest) -> Registry:
    if request.param == "mock":
        mock = SchemaRegistryClient.new_client({"url": f"mock://soma-{uuid.uuid4().hex[:8]}"})
        return Registry("mock", "mock://", lambda: mock)
    url = request.getfixturevalue("apicurio")
    return Registry("apicurio", url, lambda: SchemaRegistryClient.new_client({"url": url}))


def _poll_for(consumer: EventConsumer, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        consumer.poll(0.5)


def _settings(base: Settings, registry: Registry) -> Settings:
    """A prefix of its own per test, so every subject (`<topic>-value`) is new."""
    return base.replace(topic_prefix=f"{base.kafka.topic_prefix}r{uuid.uuid4().hex[:6]}.",
                        schema_registry_url=registry.url)


def test_encode_frames_magic_0_and_the_registered_schema_id(registry: Registry, settings: Settings) -> None:
    settings = _settings(settings, registry)
    client = registry.client()
    codec = Codec(CATALOG, settings, registry=client)
    value = codec.fill_defaults("tool.results", sample("tool.results"))
    data = codec.encode("tool.results", value)
    assert data[0] == 0
    (schema_id,) = struct.unpack(">I", data[1:5])
    subject = settings.topic_name("tool.results") + "-value"
    latest = client.get_latest_version(subject)
    assert latest.schema_id == schema_id
    # The whole schema is registered (docs and defaults too), not only its canonical form.
    assert json.loads(client.get_schema(schema_id).schema_str) == codec.schema("tool.results").raw
    # Registering the same schema again is idempotent: same id.
    again = client.register_schema(subject, RegistrySchema(registry_text(codec.schema("tool.results")), "AVRO"))
    assert again == schema_id
    # A reader with its own client resolves the id (from the server, for a real registry).
    reader = Codec(CATALOG, settings, registry=registry.client())
    assert reader.decode("tool.results", data) == codec.decode("tool.results", data)
    assert reader.decode("tool.results", data)["event_id"] == value["event_id"]


def test_the_registry_url_setting_alone_selects_the_registry(apicurio: str, settings: Settings) -> None:
    """No client handed in: each codec builds its own from SOMA_SCHEMA_REGISTRY_URL (mock:// keeps its
    schemas per client instance, so this case is a real registry's; the unit tests cover mock://)."""
    run = settings.replace(topic_prefix=f"{settings.kafka.topic_prefix}r{uuid.uuid4().hex[:6]}.",
                           schema_registry_url=apicurio)
    writer, reader = Codec(CATALOG, run), Codec(CATALOG, run)
    data = writer.encode("chat.messages", writer.fill_defaults("chat.messages", sample("chat.messages")))
    assert data[0] == 0
    assert reader.decode("chat.messages", data)["content"] == "hello 1"


def _catalog_with(tmp_path: Path, field: dict[str, Any]) -> Any:
    """The catalog with one field added to ChatMessage (as a new current schema)."""
    schemas = tmp_path / f"avro-{field['name']}"
    shutil.copytree(SCHEMA_DIR, schemas)
    current = json.loads((schemas / "ChatMessage.avsc").read_text())
    current["fields"].append(field)
    (schemas / "ChatMessage.avsc").write_text(json.dumps(current))
    return load_catalog(CATALOG_FILE, schemas)


def test_backward_compatibility_refuses_an_incompatible_schema(
    apicurio: str, settings: Settings, tmp_path: Path
) -> None:
    """BACKWARD on the subject: a field with a default is accepted, one without is refused in one line.

    A real registry only: confluent-kafka's mock client has no compatibility rules.
    """
    registry = Registry("apicurio", apicurio, lambda: SchemaRegistryClient.new_client({"url": apicurio}))
    settings = _settings(settings, registry)
    subject = settings.topic_name("chat.messages") + "-value"
    client = registry.client()
    first = Codec(CATALOG, settings, registry=client)
    v1 = first.encode("chat.messages", first.fill_defaults("chat.messages", sample("chat.messages")))
    assert client.set_compatibility(subject, "BACKWARD")["compatibility"] == "BACKWARD"
    assert client.get_compatibility(subject) == "BACKWARD"

    compatible = _catalog_with(tmp_path, {"name": "priority", "type": "int", "default": 0})
    incompatible = _catalog_with(tmp_path, {"name": "mood", "type": "string"})
    new_schema = registry_text(compatible.schemas.get(compatible.topics["chat.messages"].value_schema))
    bad_schema = registry_text(incompatible.schemas.get(incompatible.topics["chat.messages"].value_schema))
    assert client.test_compatibility(subject, RegistrySchema(new_schema, "AVRO")) is True
    assert client.test_compatibility(subject, RegistrySchema(bad_schema, "AVRO")) is False

    # The platform's codec: the evolved schema registers as a new version and still reads v1 records.
    evolved = Codec(compatible, settings, registry=registry.client())
    v2 = evolved.encode("chat.messages", evolved.fill_defaults("chat.messages", sample("chat.messages", n=2)))
    assert v2[1:5] != v1[1:5]
    assert evolved.decode("chat.messages", v1)["priority"] == 0
    assert len(client.get_versions(subject)) == 2
    # The incompatible one is refused: one line naming the topic, the setting and the subject.
    refused = Codec(incompatible, settings, registry=registry.client())
    with pytest.raises(EventValidationError) as caught:
        refused.encode("chat.messages", {**refused.fill_defaults("chat.messages", sample("chat.messages")),
                                         "mood": "calm"})
    message = str(caught.value)
    assert message.startswith(f"chat.messages: schema registry (SOMA_SCHEMA_REGISTRY_URL) refused {subject}:")
    assert "\n" not in message
    with pytest.raises(SchemaRegistryError):
        client.register_schema(subject, RegistrySchema(bad_schema, "AVRO"))
    assert len(client.get_versions(subject)) == 2


def test_events_round_trip_through_the_broker_in_the_confluent_format(registry: Registry, settings: Settings) -> None:
    """The platform's producer and consumer, on the real broker, with the registry's framing."""
    run = _settings(settings, registry)
    ensure(run, CATALOG)
    producer = EventProducer(run, CATALOG, Codec(CATALOG, run, registry=registry.client()))
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    sent = [producer.send("chat.messages", sample("chat.messages", tenant, n), tenant=tenant) for n in range(1, 6)]
    producer.close()
    assert len(sent) == 5
    consumer = EventConsumer(run, CATALOG, Codec(CATALOG, run, registry=registry.client()), ["chat.messages"],
                             f"reg-{uuid.uuid4().hex[:8]}", from_beginning=True)
    try:
        seen = [event for event in consumer.events(max_messages=5, idle_timeout_s=30)]
    finally:
        consumer.close()
    assert [event.error for event in seen] == [None] * 5
    assert all(event.raw[0] == 0 for event in seen)
    assert sorted(event.value["sequence"] for event in seen) == [1, 2, 3, 4, 5]
    assert {event.value["tenant_id"] for event in seen} == {tenant}


def test_schemas_outlive_a_restart_of_the_local_registry(started: LocalRegistry | None, settings: Settings) -> None:
    """Records in the broker keep their schema ids: the registry's storage is a file, not memory."""
    if started is None:
        pytest.skip("the stack's own registry is in use: this test restarts only one it started itself")
    registry = Registry("apicurio", started.url, lambda: SchemaRegistryClient.new_client({"url": started.url}))
    run = _settings(settings, registry)
    writer = Codec(CATALOG, run, registry=registry.client())
    data = writer.encode("tool.results", writer.fill_defaults("tool.results", sample("tool.results")))
    first_pid = started.daemon.pid()
    assert first_pid is not None
    assert started.stop() is True  # SIGTERM by pid, SIGKILL after the grace
    assert started.daemon.pid() is None
    started.start()
    started.wait_healthy(START_TIMEOUT_S)
    assert started.daemon.pid() not in (None, first_pid)
    reader = Codec(CATALOG, run, registry=registry.client())
    assert reader.decode("tool.results", data)["event_id"] == writer.decode("tool.results", data)["event_id"]


def test_a_registry_outage_stops_the_consumer_without_committing(apicurio: str, settings: Settings) -> None:
    """An unknown id the registry cannot be asked about is not a bad record: the reader raises,
    commits nothing, and a reader with the registry back gets the record."""
    registry = Registry("apicurio", apicurio, lambda: SchemaRegistryClient.new_client({"url": apicurio}))
    run = _settings(settings, registry)
    ensure(run, CATALOG)
    producer = EventProducer(run, CATALOG, Codec(CATALOG, run, registry=registry.client()))
    sent = producer.send("tool.results", sample("tool.results"), tenant="tenant-a")
    producer.close()
    group = f"reg-{uuid.uuid4().hex[:8]}"
    gone = run.replace(schema_registry_url=f"http://127.0.0.1:{_free_port()}/apis/ccompat/v7")
    blind = EventConsumer(gone, CATALOG, Codec(CATALOG, gone), ["tool.results"], group, from_beginning=True)
    try:
        with pytest.raises(InfrastructureUnavailable, match=r"^tool.results: schema registry unreachable "
                                                            r"\(SOMA_SCHEMA_REGISTRY_URL\): "):
            _poll_for(blind, 60.0)
    finally:
        blind.close()
    again = EventConsumer(run, CATALOG, Codec(CATALOG, run, registry=registry.client()), ["tool.results"], group,
                          from_beginning=True)
    try:
        seen = list(again.events(max_messages=1, idle_timeout_s=30))
    finally:
        again.close()
    assert [(event.error, event.value["event_id"]) for event in seen] == [(None, sent.event_id)]
