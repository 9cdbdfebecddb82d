"""Every producer of the platform puts a key on the partition Kafka's Java producer puts it on.

Kafka's own Java client (`kafka-clients`, from the local stack's Maven download, driven by a small
program compiled here) and every Soma producer write the same 50 session keys (`tenant:session`, some
non-ASCII) and the empty key to one 7-partition topic on the real broker: `EventProducer`, `soma produce`,
the outbox relay (`soma outbox relay --drain` over rows the `OutboxWriter` wrote), the streams' emit path
(a `StreamApp`'s Faust producer) and a plain aiokafka producer (its default partitioner, as a service
using aiokafka would). The partitions compared are those of the records read back, not computed ones.
7 partitions, not the catalog's 3: every producer must follow the topic's real partition count.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka.admin import NewTopic
from sqlalchemy.orm import Session

from outbox.writer import OutboxWriter
from soma.clients import aiokafka_security, database_engine, kafka_admin
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import EventProducer
from soma.contracts.partition import partition_for
from soma.contracts.samples import sample
from soma.ops.processes import run_bounded, run_soma
from soma.ops.stack.kafka import LocalKafka
from soma.ops.supervisor.spec import stream_topology
from soma.settings import Settings
from streams.app import StreamApp
from streams.logic.output import Output
from tests.support.outbox_relay import consume_all, own_schema

TOPIC = "chat.messages"
PARTITIONS = 7
TENANTS = ("acme", "globex")
SESSION_NAMES = ("s-{n}", "sitzung-ü-{n}", "会话-{n}", "🙂 {n}", "café-{n}")
SESSIONS = [(tenant, name.format(n=n)) for tenant in TENANTS for n in range(5) for name in SESSION_NAMES]
JAVA_SOURCE = Path(__file__).resolve().parents[2] / "support" / "java" / "KeyedProducer.java"
PRODUCERS = ("java", "event_producer", "cli", "relay", "streams", "aiokafka")
EMPTY_KEY_PRODUCERS = ("java", "event_producer", "cli", "relay", "aiokafka")  # the streams' keys come from the catalog


def key_of(tenant: str, session: str) -> bytes:
    return f"{tenant}:{session}".encode()


@pytest.fixture
def own(settings: Settings) -> Iterator[Settings]:
    """The run's settings with a prefix of their own, its chat.messages topic made with 7 partitions."""
    own = settings.replace(topic_prefix=f"{settings.kafka.topic_prefix}part{uuid.uuid4().hex[:6]}.")
    admin = kafka_admin(own)  # kept until the futures resolve
    for future in admin.create_topics([NewTopic(own.topic_name(TOPIC), PARTITIONS, 1)]).values():
        future.result(timeout=30)
    try:
        with own_schema(own, "partitioning") as migrated:
            yield migrated
    finally:
        for future in admin.delete_topics([own.topic_name(TOPIC)]).values():
            future.result(timeout=30)


class Ids:
    """A fresh event id per (producer, key); the records carry it as their dedupe-key header."""

    def __init__(self) -> None:
        self.by_id: dict[str, tuple[str, bytes]] = {}

    def new(self, producer: str, key: bytes) -> str:
        event_id = str(uuid.uuid4())
        self.by_id[event_id] = (producer, key)
        return event_id


def event(tenant: str, session: str, event_id: str) -> dict[str, object]:
    return {**sample(TOPIC, tenant=tenant), "session_id": session, "event_id": event_id}


def send_java(own: Settings, ids: Ids, tmp_path: Path) -> None:
    if shutil.which("javac") is None:
        pytest.fail("javac (JDK 17) is needed to compile the Java producer")
    libs = LocalKafka(own).libs
    LocalKafka(own).fetch()  # a no-op when the stack's broker jars (kafka-clients among them) are there
    classes = tmp_path / "classes"
    compiled = run_bounded(["javac", "-d", str(classes), "-cp", f"{libs}/*", str(JAVA_SOURCE)], timeout_s=180)
    assert compiled.returncode == 0, compiled.stderr
    lines = tmp_path / "java-keys.tsv"
    keys = [key_of(t, s) for t, s in SESSIONS] + [b""]
    lines.write_text("".join(f"{key.hex()}\t{ids.new('java', key)}\n" for key in keys), encoding="utf-8")
    ran = run_bounded(["java", "-Xmx256m", "-cp", f"{classes}:{libs}/*", "KeyedProducer", own.kafka.bootstrap,
                       own.topic_name(TOPIC), str(lines)], timeout_s=180)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert len(ran.stdout.split()) == len(keys)


def send_event_producer(own: Settings, ids: Ids) -> None:
    catalog = load_catalog()
    producer = EventProducer(own, catalog, Codec(catalog, own))
    records = [producer.prepare(TOPIC, event(t, s, ids.new("event_producer", key_of(t, s))), tenant=t)
               for t, s in SESSIONS]
    records.append(producer.prepare(TOPIC, event("acme", "e", ids.new("event_producer", b"")), tenant="acme", key=""))
    producer.send_all(records)


def send_cli(own: Settings, ids: Ids, tmp_path: Path) -> None:
    runs: list[tuple[str, list[tuple[str, str]], tuple[str, ...]]] = [
        (tenant, [(t, s) for t, s in SESSIONS if t == tenant], ()) for tenant in TENANTS
    ]
    runs.append(("acme", [("acme", "e")], ("--key", "")))
    for number, (tenant, sessions, options) in enumerate(runs):
        file = tmp_path / f"cli-{number}.jsonl"
        file.write_text("".join(
            json.dumps(event(tenant, session, ids.new("cli", b"" if options else key_of(tenant, session)))) + "\n"
            for _, session in sessions
        ), encoding="utf-8")
        result = run_soma(own, "produce", TOPIC, "--tenant", tenant, "--file", str(file), *options, timeout_s=120)
        assert result.returncode == 0, result.stderr


def send_relay(own: Settings, ids: Ids) -> None:
    catalog = load_catalog()
    writer = OutboxWriter(catalog, Codec(catalog, own), own)
    engine = database_engine(own)
    try:
        with Session(engine) as session, session.begin():
            for tenant, name in SESSIONS:
                event_id = ids.new("relay", key_of(tenant, name))
                writer.emit(session, TOPIC, event(tenant, name, event_id), tenant=tenant, dedupe_key=event_id)
            event_id = ids.new("relay", b"")
            writer.emit(session, TOPIC, event("acme", "e", event_id), tenant="acme", dedupe_key=event_id, key="")
    finally:
        engine.dispose()
    result = run_soma(own, "outbox", "relay", "--drain", "--no-metrics", "--quiet", timeout_s=180)
    assert result.returncode == 0, result.stderr[-2000:]


async def send_streams(own: Settings, ids: Ids) -> None:
    """The streams' own path: `Emitter.send` (no partition given) through the app's Faust producer."""
    stream = StreamApp("worker", stream_topology("worker").sources, own)
    producer = stream.app.producer
    await producer.start()
    try:
        outputs = [Output(TOPIC, event(t, s, ids.new("streams", key_of(t, s))), t) for t, s in SESSIONS]
        await stream.acknowledged(await stream.send(outputs), "test outputs")
    finally:
        await producer.stop()


async def send_aiokafka(own: Settings, ids: Ids) -> None:
    """A plain aiokafka producer, its default partitioner (what a service using aiokafka gets)."""
    producer = AIOKafkaProducer(bootstrap_servers=own.kafka.bootstrap, acks="all", **aiokafka_security(own))
    await producer.start()
    try:
        for key in [key_of(t, s) for t, s in SESSIONS] + [b""]:
            await producer.send_and_wait(own.topic_name(TOPIC), b"aiokafka", key=key,
                                         headers=[("dedupe-key", ids.new("aiokafka", key).encode())])
    finally:
        await producer.stop()


def test_every_producer_puts_a_key_where_javas_producer_does(own: Settings, tmp_path: Path) -> None:
    ids = Ids()
    send_java(own, ids, tmp_path)
    send_event_producer(own, ids)
    send_cli(own, ids, tmp_path)
    send_relay(own, ids)
    asyncio.run(send_streams(own, ids))
    asyncio.run(send_aiokafka(own, ids))

    placed: dict[tuple[str, bytes], list[int]] = {}
    for record in consume_all(own, TOPIC):
        placed.setdefault(ids.by_id[record.headers["dedupe-key"]], []).append(record.partition)
    expected = {(p, key_of(t, s)) for p in PRODUCERS for t, s in SESSIONS} | {(p, b"") for p in EMPTY_KEY_PRODUCERS}
    assert set(placed) == expected  # every record read back, none unknown
    assert all(len(partitions) == 1 for partitions in placed.values())
    java = {key: partitions[0] for (producer, key), partitions in placed.items() if producer == "java"}

    disagree = {
        (producer, key.decode()): (partitions[0], java[key])
        for (producer, key), partitions in placed.items() if partitions[0] != java[key]
    }
    assert disagree == {}, "(producer, key): (its partition, Java's)"
    assert {key.decode(): partition_for(key, PARTITIONS) for key in java} == {k.decode(): p for k, p in java.items()}
    # The test can tell partitioners apart: the keys cover every partition, and CRC-32 (librdkafka's
    # default, what Soma used before) would have put many of them elsewhere.
    assert set(java.values()) == set(range(PARTITIONS))
    crc32_moved = sum(zlib.crc32(key) % PARTITIONS != partition for key, partition in java.items() if key)
    assert crc32_moved > len(SESSIONS) // 2
