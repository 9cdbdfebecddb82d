"""Traces without a broker: header propagation, the exporters, the spans of the writer and the relay's
publisher (with a fake producer), and the no-op path when tracing is off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from outbox.relay.claim import ClaimedRow
from outbox.relay.publisher import Batch, Publisher
from outbox.writer import Emission, OutboxWriter
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.errors import SettingsError
from soma.observability import telemetry
from soma.settings import Settings, load_settings
from tests.support.samples import sample
from tests.support.traces import SpanRecord, load_spans

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[Settings, Path]]:
    """Tracing on (jsonl into tmp_path) for the test, off again after it."""
    telemetry.shutdown()
    path = tmp_path / "spans-{service}.jsonl"
    settings = load_settings(otel_traces_exporter="jsonl", otel_traces_file=path, topic_prefix="unit.")
    assert telemetry.setup(settings, "unit") is not None
    yield settings, tmp_path / "spans-soma-unit.jsonl"
    telemetry.shutdown()


def spans_of(path: Path) -> list[SpanRecord]:
    telemetry.flush()
    return load_spans([path])


# --- propagation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "carrier",
    [
        {"traceparent": PARENT, "tenant": "acme"},
        {"traceparent": PARENT.encode(), "tenant": b"acme"},
        [("tenant", b"acme"), ("traceparent", PARENT.encode())],
        [("traceparent", PARENT), ("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")],  # first wins
    ],
)
def test_extract_reads_w3c_context_from_any_header_shape(carrier: Any) -> None:
    context = trace.get_current_span(telemetry.extract(carrier)).get_span_context()
    assert context.is_valid
    assert context.is_remote
    assert f"{context.trace_id:032x}" == PARENT.split("-")[1]
    assert f"{context.span_id:016x}" == PARENT.split("-")[2]


@pytest.mark.parametrize("carrier", [None, {}, {"traceparent": "garbage"}, [("tenant", b"x")]])
def test_extract_without_a_valid_traceparent_is_empty(carrier: Any) -> None:
    assert not trace.get_current_span(telemetry.extract(carrier)).get_span_context().is_valid


def test_inject_writes_the_span_context_and_tracestate() -> None:
    parent = telemetry.extract({"traceparent": PARENT, "tracestate": "vendor=1"})
    span = trace.NonRecordingSpan(trace.get_current_span(parent).get_span_context())
    headers = telemetry.inject(span)
    assert headers == {"traceparent": PARENT, "tracestate": "vendor=1"}
    assert telemetry.inject() == {}  # no current span: nothing to carry
    replaced = telemetry.with_trace_headers([("tenant", b"a"), ("traceparent", b"00-old")], span)
    assert replaced == [("tenant", b"a"), ("traceparent", PARENT.encode()), ("tracestate", b"vendor=1")]


def test_messaging_attributes_follow_the_semantic_conventions() -> None:
    attributes = telemetry.messaging_attributes(
        "process", "p.chat.messages", partition=3, offset=42, key=b"acme:s1", group="soma-worker",
        tenant="acme", event_id="e1", session_id="s1",
    )
    assert attributes == {
        "messaging.system": "kafka", "messaging.operation.type": "process", "messaging.operation.name": "process",
        "messaging.destination.name": "p.chat.messages", "messaging.destination.partition.id": "3",
        "messaging.kafka.offset": 42, "messaging.kafka.message.key": "acme:s1",
        "messaging.consumer.group.name": "soma-worker", "soma.tenant": "acme", "soma.event_id": "e1",
        "soma.session_id": "s1",
    }


# --- off: nothing installed, nothing done --------------------------------------------------------
class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.sent.append({"topic": topic, **kwargs})

    def deliver_all(self) -> None:
        class Msg:
            def __init__(self, partition: int, offset: int) -> None:
                self._p, self._o = partition, offset

            def partition(self) -> int:
                return self._p

            def offset(self) -> int:
                return self._o

        for offset, item in enumerate(self.sent):
            item["on_delivery"](None, Msg(1, offset))


def rows(n: int) -> list[ClaimedRow]:
    return [ClaimedRow(i, "acme", "chat.messages", "acme:s", {"tenant": "acme", "traceparent": PARENT},
                       b"x", 0, 0.0) for i in range(n)]


def publisher_with_fake(settings: Settings) -> tuple[Publisher, FakeProducer]:
    publisher = Publisher.__new__(Publisher)
    fake = FakeProducer()
    publisher.settings, publisher.fatal, publisher._producer = settings, None, fake  # type: ignore[assignment]
    return publisher, fake


def test_off_by_default_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry.shutdown()
    assert load_settings().telemetry.traces_exporter == "none"
    assert telemetry.setup(load_settings(), "unit") is None
    assert telemetry.tracer() is None


def test_off_the_relay_does_no_per_row_tracing_work(monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry.shutdown()

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tracing work while tracing is off")

    for name in ("extract", "inject", "messaging_attributes", "end_delivery", "with_trace_headers"):
        monkeypatch.setattr(telemetry, name, forbidden)
    publisher, fake = publisher_with_fake(load_settings(topic_prefix="unit."))
    batch = Batch(None, rows(3))  # type: ignore[arg-type]
    publisher.send(batch)
    fake.deliver_all()
    assert batch.spans is None
    assert batch.outstanding == 0
    assert fake.sent[0]["headers"] == [("tenant", b"acme"), ("traceparent", PARENT.encode())]  # stored, unchanged


def test_off_the_writer_and_streams_keep_their_old_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry.shutdown()
    monkeypatch.setattr(telemetry, "inject", lambda *a, **k: pytest.fail("inject while off"))
    settings = load_settings(topic_prefix="unit.")
    catalog = load_catalog()
    writer = OutboxWriter(catalog, Codec(catalog, settings), settings)
    values = writer.prepare(Emission("chat.messages", sample("chat.messages", tenant="acme"), "acme", "d",
                                     headers={"traceparent": PARENT}))
    assert values["headers"]["traceparent"] == PARENT
    from types import SimpleNamespace

    from streams.app import StreamApp
    from streams.runtime.tracing import NO_SPAN

    assert StreamApp.processing(SimpleNamespace(tracer=None), []) is NO_SPAN  # type: ignore[arg-type]


def test_jsonl_without_a_file_is_a_one_line_settings_error() -> None:
    telemetry.shutdown()
    with pytest.raises(SettingsError, match="SOMA_OTEL_TRACES_FILE"):
        telemetry.setup(load_settings(otel_traces_exporter="jsonl"), "unit")
    assert telemetry.tracer() is None


# --- on -----------------------------------------------------------------------------------------------
def test_jsonl_exporter_writes_one_span_per_line_with_the_service_name(traced: tuple[Settings, Path]) -> None:
    _, path = traced
    tracer = telemetry.tracer()
    assert tracer is not None
    with telemetry.current_span(tracer, "outer") as outer, telemetry.current_span(tracer, "inner"):
        pass
    spans = spans_of(path)
    assert [s.name for s in spans] == ["inner", "outer"]
    assert {s.service for s in spans} == {"soma-unit"}
    assert spans[0].parent_id == spans[1].span_id
    assert spans[1].parent_id is None
    assert outer is not None
    assert spans[1].trace_id == f"0x{outer.get_span_context().trace_id:032x}"


def test_the_writer_starts_the_trace_and_stores_its_span_in_the_row(traced: tuple[Settings, Path]) -> None:
    settings, path = traced
    catalog = load_catalog()
    writer = OutboxWriter(catalog, Codec(catalog, settings), settings)
    tracer = telemetry.tracer()
    assert tracer is not None
    event = sample("chat.messages", tenant="acme")
    with tracer.start_as_current_span("request handler"):
        span, row = writer._prepare_traced(tracer, Emission("chat.messages", event, "acme", "d1"))
        span.end()
    created, handler = spans_of(path)
    assert created.name == "create chat.messages"
    assert created.parent_id == handler.span_id
    assert row["headers"]["traceparent"].startswith(f"00-{created.trace_id[2:]}-{created.span_id[2:]}-")
    assert created.attributes["messaging.destination.name"] == "unit.chat.messages"
    assert created.attributes["soma.tenant"] == "acme"
    assert created.attributes["soma.session_id"] == event["session_id"]
    assert created.attributes["soma.event_id"] == row["event_id"]
    # A traceparent the caller passes is the parent when there is no current span.
    span, row = writer._prepare_traced(tracer, Emission("chat.messages", event, "acme", "d2",
                                                        headers={"traceparent": PARENT}))
    span.end()
    assert spans_of(path)[-1].parent_id == "0x" + PARENT.split("-")[2]


def test_the_relay_publish_span_is_parented_to_the_row_and_ends_at_delivery(traced: tuple[Settings, Path]) -> None:
    settings, path = traced
    publisher, fake = publisher_with_fake(settings)
    batch = Batch(None, rows(2))  # type: ignore[arg-type]
    publisher.send(batch)
    assert spans_of(path) == []  # enqueued, not acknowledged: nothing ended yet
    fake.deliver_all()
    spans = spans_of(path)
    assert [s.name for s in spans] == ["publish chat.messages"] * 2
    for offset, (span, sent) in enumerate(zip(spans, fake.sent, strict=True)):
        assert span.parent_id == "0x" + PARENT.split("-")[2]
        assert span.trace_id == "0x" + PARENT.split("-")[1]
        assert span.kind == "SpanKind.PRODUCER"
        headers = dict(sent["headers"])
        assert headers["traceparent"].startswith(f"00-{span.trace_id[2:]}-{span.span_id[2:]}-".encode())
        assert span.attributes["messaging.destination.name"] == "unit.chat.messages"
        assert span.attributes["messaging.kafka.offset"] == offset
        assert span.attributes["messaging.destination.partition.id"] == "1"
        assert span.attributes["soma.tenant"] == "acme"


def test_a_stream_batch_span_links_every_record_and_a_single_record_is_parented(
    traced: tuple[Settings, Path],
) -> None:
    from types import SimpleNamespace

    from streams.app import StreamApp
    from streams.runtime.records import Incoming

    settings, path = traced
    other = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"

    def record(traceparent: str, offset: int) -> Incoming:
        value = {"tenant_id": "acme", "event_id": f"e{offset}", "session_id": "s1"}
        return Incoming("cog.predictor_updates", value, 0, offset, b"acme", b"", {"traceparent": traceparent.encode()})

    fake: Any = SimpleNamespace(tracer=telemetry.tracer(), name="integrator", settings=settings,
                                app=SimpleNamespace(conf=SimpleNamespace(id="unit.soma-integrator")))
    fake._process_attributes = lambda records: StreamApp._process_attributes(fake, records)
    with StreamApp.processing(fake, [record(PARENT, 1), record(other, 2)]):
        pass
    with StreamApp.processing(fake, [record(PARENT, 3)]):
        pass
    batch, single = spans_of(path)
    assert batch.parent_id is None
    assert batch.links == ["0x" + PARENT.split("-")[2], "0x" + "b" * 16]
    assert batch.attributes["messaging.batch.message_count"] == 2
    assert single.parent_id == "0x" + PARENT.split("-")[2]
    assert single.attributes["messaging.kafka.offset"] == 3
    assert single.attributes["messaging.consumer.group.name"] == "unit.soma-integrator"
    assert single.attributes["soma.session_id"] == "s1"


def test_soma_produce_ends_its_publish_span_at_the_acknowledgement(traced: tuple[Settings, Path]) -> None:
    from soma.contracts.events import EventProducer

    settings, path = traced
    catalog = load_catalog()
    producer = EventProducer.__new__(EventProducer)
    producer.settings, producer.catalog, producer.codec = settings, catalog, Codec(catalog, settings)
    fake = FakeProducer()
    fake.flush = lambda timeout: (fake.deliver_all(), 0)[1]  # type: ignore[attr-defined]
    producer._producer = fake  # type: ignore[assignment]
    delivered = producer.send("chat.messages", sample("chat.messages", tenant="acme"), tenant="acme")
    (span,) = spans_of(path)
    assert span.name == "publish chat.messages"
    assert span.parent_id is None
    assert span.attributes["messaging.kafka.offset"] == delivered.offset == 0
    assert span.attributes["soma.event_id"] == delivered.event_id
    headers = dict(fake.sent[0]["headers"])
    assert headers["traceparent"].startswith(f"00-{span.trace_id[2:]}-{span.span_id[2:]}-".encode())
    assert len([name for name, _ in fake.sent[0]["headers"] if name == "traceparent"]) == 1
