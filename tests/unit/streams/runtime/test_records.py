"""Tolerant headers, dead-lettering every record-borne failure, and DLQ records that always fit their topic."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import prepare
from soma.contracts.limits import record_size, size_limit
from soma.settings import load_settings
from streams.logic.output import Output
from streams.runtime.metrics import StreamMetrics
from streams.runtime.records import Incoming, Records, header_tenant, headers_of
from tests.support.samples import sample
from tests.unit.streams.conftest import FakeProducer


def records() -> tuple[Records, FakeProducer]:
    stream = Records()
    stream.name, stream.settings, stream.catalog = "unit", load_settings(topic_prefix="unit."), load_catalog()
    stream.codec, stream.metrics, stream.tracer = Codec(stream.catalog, stream.settings), StreamMetrics("unit"), None
    stream.logical = {stream.settings.topic_name(t): t for t in stream.catalog.topics}
    producer = FakeProducer()
    stream.app = SimpleNamespace(producer=producer)
    return stream, producer


def event(stream: Records, topic: str, value: bytes | None, headers: Any, key: bytes | None = b"k") -> Any:
    message = SimpleNamespace(topic=stream.settings.topic_name(topic), partition=0, offset=7, key=key,
                              value=value, headers=headers)
    return SimpleNamespace(message=message)


def dead_letters(stream: Records, producer: FakeProducer) -> list[dict[str, Any]]:
    return [stream.codec.decode("dlq", s["value"]) for s in producer.sent if s["topic"] == "unit.dlq"]


def test_headers_are_read_tolerantly() -> None:
    headers = headers_of([("tenant", b"\xff\xfeacme"), ("empty", None), (b"bin\xff", b"v"), ("n", 5), "junk"])
    assert headers == {"tenant": b"\xff\xfeacme", "empty": b"", "bin\ufffd": b"v", "n": b"5"}
    assert header_tenant(headers) == "\ufffd\ufffdacme"
    assert header_tenant({}) is None
    assert header_tenant({"tenant": b""}) is None
    assert headers_of(None) == {}
    assert headers_of(42) == {}


def test_a_non_utf8_tenant_header_reaches_the_handler_and_the_record_is_processed() -> None:
    stream, producer = records()
    request = stream.codec.fill_defaults("tool.requests", sample("tool.requests", tenant="acme"))
    good = stream.codec.encode("tool.requests", request)
    decoded = asyncio.run(stream.decode(event(stream, "tool.requests", good, [("tenant", b"\xff\xfe"), ("x", None)])))
    assert decoded is not None
    assert decoded.tenant == "acme"
    assert producer.sent == []


@pytest.mark.parametrize("value", [None, b"", b"\x00garbage", b"\xff" * 3])
def test_a_null_empty_or_undecodable_value_is_dead_lettered_with_a_bad_header_and_no_key(value: bytes | None) -> None:
    stream, producer = records()
    decoded = asyncio.run(stream.decode(event(stream, "tool.requests", value, [("tenant", b"t\xff")], key=None)))
    assert decoded is None
    (dead,) = dead_letters(stream, producer)
    # "t\ufffd" is not a valid tenant id: the dead letter is filed under "unknown", the header kept as sent.
    assert (dead["error_type"], dead["tenant_id"], dead["original_key"]) == ("decode", "unknown", None)
    assert dead["headers"] == {"tenant": b"t\xff"}
    assert dead["truncated"] is False


def incoming(stream: Records, raw: bytes = b"raw") -> Incoming:
    return Incoming("tool.requests", {"tenant_id": "acme", "event_id": "e1"}, 0, 3, b"k", raw, {"tenant": b"acme"})


@pytest.mark.parametrize(("exc", "reason"), [
    (RecursionError("maximum recursion depth exceeded"), "processing"),
    (AttributeError("bug"), "processing"),
    (ValueError("bad"), "processing"),
])
def test_any_exception_of_the_handler_dead_letters_the_record(exc: Exception, reason: str) -> None:
    stream, producer = records()

    async def handle(record: Incoming) -> None:
        raise exc

    asyncio.run(stream.handle_safely(incoming(stream), handle))
    (dead,) = dead_letters(stream, producer)
    assert dead["error_type"] == reason
    assert dead["error"].startswith(type(exc).__name__)
    assert (dead["source_topic"], dead["source_offset"], dead["original_value"]) == ("tool.requests", 3, b"raw")


def test_an_infrastructure_fault_is_not_dead_lettered() -> None:
    stream, producer = records()

    async def handle(record: Incoming) -> None:
        raise KafkaConnectionError("broker gone")

    with pytest.raises(KafkaConnectionError):
        asyncio.run(stream.handle_safely(incoming(stream), handle))
    assert producer.sent == []


def test_a_too_large_dead_letter_keeps_a_truncated_original_and_says_so() -> None:
    stream, producer = records()
    raw = b"\x01" * 999_000
    headers = {"tenant": b"acme", "big": b"h" * 5_000, **{f"h{i}": b"v" * 900 for i in range(40)}}
    record = Incoming("chat.messages", {"tenant_id": "acme", "event_id": "e1"}, 0, 3, b"key" * 10, raw, headers)

    async def handle(record: Incoming) -> None:
        await stream.emit([Output("memory.writes", sample("memory.writes", tenant="acme")
                                  | {"payload_json": '"' + "\\\"" * 600_000 + '"'})], cause=record)

    asyncio.run(stream.handle_safely(record, handle))
    (sent,) = producer.sent  # the memory write never reached the producer
    assert sent["size"] <= size_limit(stream.catalog.topic("dlq"), stream.settings)
    dead = stream.codec.decode("dlq", sent["value"])
    assert dead["error_type"] == "output_too_large"
    assert "memory.writes" in dead["error"]
    assert dead["truncated"] is True
    assert dead["original_size"] == record_size(b"key" * 10, raw, list(headers.items()))
    assert raw.startswith(dead["original_value"])
    assert len(dead["original_value"]) > 900_000
    assert dead["headers"]["big"] == b"h" * 1024
    assert sum(len(v) for v in dead["headers"].values()) <= 16 * 1024


def test_outputs_are_all_built_before_any_is_sent() -> None:
    stream, producer = records()
    ok = Output("tool.results", sample("tool.results", tenant="acme"), "acme")
    too_big = Output("memory.writes", sample("memory.writes", tenant="acme") | {"payload_json": "x" * 1_100_000},
                     "acme")
    with pytest.raises(Exception, match="exceeds the topic's limit"):
        asyncio.run(stream.send([ok, too_big]))
    assert producer.sent == []
    record = prepare(stream.catalog, stream.codec, stream.settings, "tool.results", ok.event, tenant="acme")
    assert record.topic == "tool.results"


def test_a_record_whose_tenant_id_is_unusable_is_dead_lettered_at_decode() -> None:
    stream, producer = records()
    value = stream.codec.encode("tool.requests", stream.codec.fill_defaults("tool.requests", {
        "tenant_id": "acme corp", "session_id": "s", "call_id": "c", "tool": "calc", "arguments_json": "{}",
        "requested_by": "m"}))
    decoded = asyncio.run(stream.decode(event(stream, "tool.requests", value, [("tenant", b"acme corp")], key=b"k")))
    assert decoded is None
    (dead,) = dead_letters(stream, producer)
    assert (dead["error_type"], dead["tenant_id"]) == ("decode", "unknown")
    assert "tenant id 'acme corp'" in dead["error"]
