"""Poison records against the real broker and database: the bad record is dead-lettered with its reason, the
stream keeps serving the other tenants, and no process exits.

One module-scoped set of `faust ... worker` processes (tools, worker, replicator) serves every
test; each test uses its own tenants (and unique keys for records whose tenant header is unreadable).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from soma.clients import database_engine, kafka_producer
from soma.contracts.events import ConsumedEvent, prepare
from soma.contracts.limits import record_size, size_limit
from soma.settings import Settings
from tests.integration.streams.conftest import LOGS
from tests.support.procs import wait_for
from tests.support.streams import Bus, stream_process, wait_ready

STREAMS = ("tools", "worker", "replicator")


@pytest.fixture(scope="module")
def running(migrated: Settings) -> Iterator[tuple[Settings, dict[str, subprocess.Popen[bytes]]]]:
    own = migrated.replace(worker_responder="streams.logic.responders:EchoResponder",
                           replicator_retry_base_s=0.2, replicator_retry_max_s=1.0)
    with ExitStack() as stack:
        procs = {name: stack.enter_context(stream_process(name, own, LOGS, max_lifetime_s=600)) for name in STREAMS}
        for name in STREAMS:
            wait_ready(own, name, timeout_s=90)
        yield own, procs


@pytest.fixture(scope="module")
def settings_(running: tuple[Settings, dict[str, subprocess.Popen[bytes]]]) -> Settings:
    return running[0]


@pytest.fixture(scope="module")
def bus(settings_: Settings) -> Bus:
    return Bus(settings_)


@pytest.fixture
def alive(running: tuple[Settings, dict[str, subprocess.Popen[bytes]]]) -> Iterator[None]:
    """After the test: every stream process is the one started (none exited, none restarted)."""
    procs = running[1]
    pids = {name: proc.pid for name, proc in procs.items()}
    yield
    assert {name: proc.poll() for name, proc in procs.items()} == dict.fromkeys(STREAMS)
    assert {name: proc.pid for name, proc in procs.items()} == pids


def _tenant(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def _of(tenant: str) -> Any:
    return lambda e: e.value.get("tenant_id") == tenant


def _request(tenant: str, call: str, arguments_json: str, tool: str = "echo") -> dict[str, Any]:
    return {"tenant_id": tenant, "session_id": "s", "call_id": call, "tool": tool, "arguments_json": arguments_json,
            "timeout_ms": 2000, "requested_by": "m"}


def _prepared_request(bus: Bus, tenant: str, arguments_json: str) -> Any:
    """A valid tool request as the bytes a producer sends (to write it with headers of our own)."""
    return prepare(bus.catalog, bus.codec, bus.settings, "tool.requests", _request(tenant, "c1", arguments_json),
                   tenant=tenant)


def _dead(bus: Bus, keep: Any, timeout_s: float = 60) -> ConsumedEvent:
    return bus.collect("dlq", lambda d: len(d) >= 1, keep=keep, timeout_s=timeout_s)[0]


def test_deeply_nested_tool_arguments_are_dead_lettered_and_the_tools_stream_serves_others(
    bus: Bus, alive: None,
) -> None:
    bad, good = _tenant("deep"), _tenant("served")
    bus.send("tool.requests", _request(bad, "c1", "[" * 50_000 + "]" * 50_000), bad)
    bus.send("tool.requests", _request(good, "c2", '{"text": "hi"}'), good)
    results = bus.collect("tool.results", lambda r: len(r) >= 1, keep=_of(good))
    assert (results[0].value["status"], results[0].value["output"]) == ("ok", '{"text": "hi"}')
    dead = _dead(bus, _of(bad))
    assert (dead.value["stream"], dead.value["source_topic"], dead.value["error_type"]) == (
        "tools", "tool.requests", "validation")
    assert "arguments_json: JSON too deeply nested (50000 levels; the limit is 64)" in dead.value["error"]
    # the bad tenant's next request is served too
    bus.send("tool.requests", _request(bad, "c3", '{"n": 1}'), bad)
    assert bus.collect("tool.results", lambda r: len(r) >= 1, keep=_of(bad))[0].value["status"] == "ok"


def test_a_tenant_header_that_is_not_utf8_neither_stops_nor_blocks_the_stream(
    settings_: Settings, bus: Bus, alive: None,
) -> None:
    tenant = _tenant("hdr")
    good = _prepared_request(bus, tenant, '{"x": 1}')
    poison_key = f"poison-{uuid.uuid4().hex}".encode()
    producer = kafka_producer(settings_)
    topic = settings_.topic_name("tool.requests")
    # a valid record whose tenant header is not UTF-8 (and a header with a null value): processed
    producer.produce(topic, key=good.key, value=good.value, headers=[("tenant", b"\xff\xfe\xfd"), ("x-null", None)])
    # an undecodable record with such a header and a null value: dead-lettered
    producer.produce(topic, key=poison_key, value=None, headers=[("tenant", b"\xc3\x28"), (b"\xff", b"\xff")])
    assert producer.flush(10) == 0
    results = bus.collect("tool.results", lambda r: len(r) >= 1, keep=_of(tenant))
    assert results[0].value["status"] == "ok"
    dead = _dead(bus, lambda e: e.value.get("original_key") == poison_key)
    # "\ufffd(" is no valid tenant id: the dead letter is filed under "unknown", the header kept as sent
    assert (dead.value["stream"], dead.value["error_type"], dead.value["tenant_id"]) == ("tools", "decode", "unknown")
    assert dead.value["headers"]["tenant"] == b"\xc3\x28"


RAW_HEADER_PRODUCER = """
import asyncio, sys
from aiokafka import AIOKafkaProducer

class RawName(str):  # written by the pure-Python record builder as bytes that are not UTF-8
    def encode(self, *args, **kwargs):
        return b"\\xff\\xfe"

async def main(bootstrap, topic, key, value):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        sent = await producer.send(topic, bytes.fromhex(value), key=bytes.fromhex(key),
                                   headers=[(RawName("x"), b"h"), ("tenant", b"\\xff")])
        await sent
    finally:
        await producer.stop()

asyncio.run(main(*sys.argv[1:]))
"""


def test_a_header_name_that_is_not_utf8_does_not_kill_the_consumer(
    settings_: Settings, bus: Bus, alive: None,
) -> None:
    tenant = _tenant("hname")
    good = _prepared_request(bus, tenant, '{"x": 2}')
    produced = subprocess.run(
        [sys.executable, "-c", RAW_HEADER_PRODUCER, settings_.kafka.bootstrap, settings_.topic_name("tool.requests"),
         good.key.hex(), good.value.hex()],
        env={**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"}, capture_output=True, text=True, timeout=60, check=False,
    )
    assert produced.returncode == 0, produced.stderr
    other = _tenant("after")
    bus.send("tool.requests", _request(other, "c2", '{"y": 3}'), other)
    for who in (tenant, other):
        assert bus.collect("tool.results", lambda r: len(r) >= 1, keep=_of(who))[0].value["status"] == "ok"


def _message(tenant: str, seq: int, content: str) -> dict[str, Any]:
    return {"tenant_id": tenant, "session_id": "s", "sequence": seq, "role": "user", "content": content,
            "tool_calls": None}


def test_a_derived_output_over_the_limit_dead_letters_its_input_with_a_truncated_original(
    settings_: Settings, bus: Bus, alive: None,
) -> None:
    tenant = _tenant("big")
    # Quotes double in JSON: this message's memory write (payload_json) cannot fit memory.writes.
    # Sized so the chat record itself is just under the limit: its dead letter must be truncated.
    limit = size_limit(bus.catalog.topic("chat.messages"), settings_)
    probe = prepare(bus.catalog, bus.codec, settings_, "chat.messages", _message(tenant, 1, ""), tenant=tenant)
    room = limit - record_size(probe.key, probe.value, probe.headers) - 16
    big = _message(tenant, 1, '"' * room)
    bus.send("chat.messages", big, tenant)
    bus.send("chat.messages", _message(tenant, 2, "still served"), tenant)
    replies = bus.collect("chat.messages", lambda m: len(m) >= 1, timeout_s=90,
                          keep=lambda e: _of(tenant)(e) and e.value["role"] == "assistant")
    assert replies[0].value["content"] == "echo: still served"
    dead = _dead(bus, _of(tenant))
    assert (dead.value["stream"], dead.value["error_type"]) == ("worker", "output_too_large")
    assert "exceeds the topic's limit" in dead.value["error"]
    assert dead.value["truncated"] is True
    assert dead.value["original_size"] > len(dead.value["original_value"])
    # nothing of the refused input reached memory.writes: only message 2 (and its reply) were written
    writes = bus.collect("memory.writes", lambda w: len(w) >= 2, keep=_of(tenant))
    assert sorted(w.value["memory_key"] for w in writes) == [f"chat:s:{2:012d}", f"chat:s:{3:012d}"]


def test_a_cjk_message_of_520_kb_reaches_the_replica(settings_: Settings, bus: Bus, alive: None) -> None:
    tenant = _tenant("cjk")
    content = "語" * 175_000  # 525,000 UTF-8 bytes; with \\uXXXX escapes its memory write would be 1,050,000
    bus.send("chat.messages", _message(tenant, 1, content), tenant)
    engine = database_engine(settings_)
    try:
        def payload() -> Any:
            with engine.connect() as conn:
                return conn.execute(text("SELECT payload FROM memory_replica WHERE tenant_id = :t AND memory_key = :k"),
                                    {"t": tenant, "k": f"chat:s:{1:012d}"}).scalar()

        wait_for(lambda: payload() is not None, 90, what="the CJK message's replica row")
        assert payload()["content"] == content
    finally:
        engine.dispose()


def _write(tenant: str, key: str, payload_json: str, seconds: int) -> dict[str, Any]:
    return {"tenant_id": tenant, "memory_key": key, "operation": "upsert", "payload_json": payload_json,
            "occurred_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds),
            "event_id": str(uuid.uuid4()), "session_id": "s"}


def test_the_replicator_dead_letters_a_value_postgresql_refuses_and_the_next_write_lands(
    settings_: Settings, bus: Bus, alive: None,
) -> None:
    tenant = _tenant("refused")
    refused = _write(tenant, "nul", '{"v": "\\u0000"}', 1)  # valid JSON; jsonb refuses it (SQLSTATE 22P05)
    deep = _write(tenant, "deep", "[" * 10_000 + "]" * 10_000, 2)
    bus.send_many("memory.writes", [refused, deep, _write(tenant, "good", '{"v": 1}', 3)], tenant)
    engine = database_engine(settings_)
    try:
        def keys() -> list[str]:
            with engine.connect() as conn:
                return sorted(conn.execute(text("SELECT memory_key FROM memory_replica WHERE tenant_id = :t"),
                                           {"t": tenant}).scalars())

        wait_for(lambda: keys() == ["good"], 60, what="the good write in the replica")
    finally:
        engine.dispose()
    dead = bus.collect("dlq", lambda d: len(d) >= 2, keep=_of(tenant))
    by_reason = {d.value["error_type"]: d.value for d in dead}
    assert set(by_reason) == {"refused_by_database", "validation"}
    assert "SQLSTATE 22P05" in by_reason["refused_by_database"]["error"]
    assert "payload_json: JSON too deeply nested" in by_reason["validation"]["error"]
    assert {d.value["stream"] for d in dead} == {"replicator"}
