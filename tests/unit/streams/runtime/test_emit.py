"""Outputs: built by the shared record builder, partitioned by the producer, tenant from the output or its cause."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.settings import load_settings
from streams.logic.output import Output
from streams.runtime.emit import Emitter
from streams.runtime.metrics import StreamMetrics
from tests.support.samples import sample
from tests.unit.streams.conftest import FakeProducer, MakeRecord


def emitter() -> tuple[Emitter, FakeProducer]:
    out = Emitter()
    out.name, out.settings, out.catalog = "unit", load_settings(topic_prefix="unit."), load_catalog()
    out.codec, out.metrics, out.tracer = Codec(out.catalog, out.settings), StreamMetrics("unit"), None
    producer = FakeProducer()
    out.app = SimpleNamespace(producer=producer)
    return out, producer


def test_an_output_without_a_tenant_takes_its_causes(incoming: MakeRecord) -> None:
    out, producer = emitter()
    cause = incoming("tool.requests", {"tenant_id": "acme", "event_id": "e1"}, headers={"traceparent": b"00-x"})
    asyncio.run(out.emit([Output("tool.results", sample("tool.results", tenant="acme"))], cause=cause))
    (sent,) = producer.sent
    assert sent["topic"] == "unit.tool.results"
    assert sent["partition"] is None  # the producer's partitioner (Java's murmur2) places it
    assert sent["headers"]["tenant"] == b"acme"
    assert sent["headers"]["traceparent"] == b"00-x"  # tracing off: the cause's context is passed on


def test_an_outputs_own_tenant_wins_and_one_without_any_is_refused(incoming: MakeRecord) -> None:
    out, producer = emitter()
    cause = incoming("tool.requests", {"tenant_id": "acme", "event_id": "e1"})
    asyncio.run(out.emit([Output("tool.results", sample("tool.results", tenant="other"), "other")], cause=cause))
    assert producer.sent[0]["headers"]["tenant"] == b"other"
    with pytest.raises(ValueError, match="no tenant"):
        asyncio.run(out.emit([Output("tool.results", sample("tool.results"))]))
