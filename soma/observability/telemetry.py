"""OpenTelemetry traces across the hops: the tracer of this process and the Kafka header propagation.

One call per process, `setup(settings, component)`, installs a tracer provider built from the
settings (`SOMA_OTEL_TRACES_EXPORTER`: none | console | otlp | jsonl) and returns its tracer;
`tracer()` returns it afterwards. With `none` (the default) nothing is installed, `tracer()` is
None, and every instrumented place costs one `is None` check: hot loops test it once per batch
or record and build no attributes, headers or spans.

Spans link through W3C trace context carried in Kafka record headers (`traceparent`,
`tracestate`): `inject` writes the context of a span into headers, `extract` reads one back.
The provider is this module's own, not OpenTelemetry's global one, so a library or a test
process that configures its own SDK is left alone; `opentelemetry.trace.get_current_span()`
still sees our spans (the current span lives in the context, not in the provider).

Span names and attributes follow the messaging semantic conventions (`publish <topic>`,
`process <topic>`, `messaging.system=kafka`, ...), plus `soma.tenant`, `soma.event_id`,
`soma.session_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from soma import __version__
from soma.errors import SettingsError, first_line
from soma.settings import Settings, env_name

HEADER_TRACEPARENT = "traceparent"
HEADER_TRACESTATE = "tracestate"
TRACE_HEADERS = (HEADER_TRACEPARENT, HEADER_TRACESTATE)
INSTRUMENTATION = "soma"
_W3C = TraceContextTextMapPropagator()  # explicit: the global propagator could be changed by OTEL_PROPAGATORS

HeaderCarrier = Mapping[str, Any] | Sequence[tuple[str, Any]]


# --- header propagation ------------------------------------------------------------------------
class _KafkaHeaders(Getter[HeaderCarrier]):
    """Reads trace context from Kafka headers: a mapping or (name, str | bytes | None) pairs; first wins."""

    def get(self, carrier: HeaderCarrier, key: str) -> list[str] | None:
        if isinstance(carrier, Mapping):
            value = carrier.get(key)
        else:
            value = next((v for name, v in carrier if name == key), None)
        if value is None:
            return None
        return [value.decode(errors="replace") if isinstance(value, bytes | bytearray) else str(value)]

    def keys(self, carrier: HeaderCarrier) -> list[str]:
        return list(carrier) if isinstance(carrier, Mapping) else [name for name, _ in carrier]


_GETTER = _KafkaHeaders()


def extract(headers: HeaderCarrier | None) -> Context:
    """The (remote) trace context carried by Kafka headers; an empty context when there is none."""
    return _W3C.extract(headers or {}, getter=_GETTER)


def inject(span: Span | None = None) -> dict[str, str]:
    """`traceparent` (and `tracestate` when set) of `span`, or of the current span, as header values."""
    ctx = trace.set_span_in_context(span) if span is not None else None
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=ctx)
    return carrier


def with_trace_headers(headers: Sequence[tuple[str, bytes]], span: Span) -> list[tuple[str, bytes]]:
    """Record headers with their trace context replaced by `span`'s."""
    carrier = inject(span)
    kept = [(name, value) for name, value in headers if name not in TRACE_HEADERS]
    return kept + [(name, value.encode()) for name, value in carrier.items()]


def links_of(contexts: Sequence[Context]) -> list[Link]:
    """Links to the (valid) spans of these extracted contexts."""
    links = []
    for ctx in contexts:
        span_context = trace.get_current_span(ctx).get_span_context()
        if span_context.is_valid:
            links.append(Link(span_context))
    return links


# --- attributes ------------------------------------------------------------------------------------
def messaging_attributes(
    operation: str,
    topic: str,
    *,
    partition: int | None = None,
    offset: int | None = None,
    key: str | bytes | None = None,
    group: str | None = None,
    tenant: str | None = None,
    event_id: str | None = None,
    session_id: str | None = None,
) -> dict[str, Any]:
    """Messaging semantic-convention attributes (plus Soma's ids) of one Kafka record; None values left out.

    Build them only for a recording span (`span.is_recording()`): they are not free.
    """
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": topic,
    }
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attributes["messaging.kafka.offset"] = offset
    if key is not None:
        attributes["messaging.kafka.message.key"] = key.decode(errors="replace") if isinstance(key, bytes) else key
    if group:
        attributes["messaging.consumer.group.name"] = group
    if tenant:
        attributes["soma.tenant"] = tenant
    if event_id:
        attributes["soma.event_id"] = event_id
    if session_id:
        attributes["soma.session_id"] = session_id
    return attributes


def end_delivery(span: Span, error: str | None, partition: int | None = None, offset: int | None = None) -> None:
    """End a publish span when the broker has answered (call it from the delivery callback)."""
    if span.is_recording():
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
            span.set_attribute("error.type", error.split(":", 1)[0][:100])
        else:
            if partition is not None:
                span.set_attribute("messaging.destination.partition.id", str(partition))
            if offset is not None:
                span.set_attribute("messaging.kafka.offset", offset)
    span.end()


def end_on_delivery(span: Span, future: Any) -> Any:
    """End a publish span when `future` (an asyncio future resolving to record metadata) resolves."""
    delivery = asyncio.ensure_future(future)

    def done(result: asyncio.Future[Any]) -> None:
        if result.cancelled():
            end_delivery(span, "cancelled")
            return
        exc = result.exception()
        if exc is not None:
            fail(span, exc)
            span.end()
            return
        metadata = result.result()
        end_delivery(span, None, getattr(metadata, "partition", None), getattr(metadata, "offset", None))

    delivery.add_done_callback(done)
    return delivery


def fail(span: Span, exc: BaseException) -> None:
    """Mark `span` failed by `exc` (first line of its message as the status description)."""
    if span.is_recording():
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, first_line(exc)))


@contextlib.contextmanager
def current_span(
    tracer: Tracer | None,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Context | None = None,
    links: Sequence[Link] = (),
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span | None]:
    """A span made current for the block (None and nothing done when tracing is off)."""
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name, context=parent, kind=kind, links=links) as span:
        if attributes and span.is_recording():
            span.set_attributes(attributes)
        yield span


# --- the provider ------------------------------------------------------------------------------
class JsonLinesExporter(SpanExporter):
    """Appends one JSON object per finished span to a file (one write per span, so processes may share it)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[bytes] | None = path.open("ab", buffering=0)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(json.dumps(json.loads(span.to_json(indent=None)), separators=(",", ":")) + "\n"
                       for span in spans).encode()
        with self._lock:
            if self._file is None:
                return SpanExportResult.FAILURE
            self._file.write(data)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@dataclass
class _Tracing:
    provider: TracerProvider
    tracer: Tracer
    service: str


_active: _Tracing | None = None
_lock = threading.Lock()


def service_name(settings: Settings, component: str) -> str:
    return f"{settings.telemetry.service_prefix}{component}"


def _processor(settings: Settings, service: str) -> SpanProcessor:
    kind = settings.telemetry.traces_exporter
    if kind == "console":
        return BatchSpanProcessor(ConsoleSpanExporter(service_name=service))
    if kind == "jsonl":
        if settings.telemetry.traces_file is None:
            raise SettingsError(
                f"{env_name('otel_traces_file')} must be set when {env_name('otel_traces_exporter')}=jsonl"
            )
        path = Path(str(settings.telemetry.traces_file).replace("{service}", service))
        # Simple (synchronous) export: every span is on disk once it ends, even if the process is killed later.
        return SimpleSpanProcessor(JsonLinesExporter(path))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = settings.telemetry.exporter_otlp_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=settings.kafka.timeout_s))


def setup(settings: Settings, component: str) -> Tracer | None:
    """Install this process's tracer provider (once; later calls return the same tracer). None when off."""
    global _active
    if settings.telemetry.traces_exporter == "none":
        return None
    with _lock:
        if _active is None:
            service = service_name(settings, component)
            resource = Resource.create({
                "service.name": service,
                "service.namespace": "soma",
                "service.version": __version__,
                "service.instance.id": f"{os.uname().nodename}:{os.getpid()}",
            })
            sampler = ParentBased(TraceIdRatioBased(settings.telemetry.traces_sample_ratio))
            # shutdown_on_exit: an atexit hook flushes batched spans when the process ends normally.
            provider = TracerProvider(resource=resource, sampler=sampler, shutdown_on_exit=True)
            provider.add_span_processor(_processor(settings, service))
            _active = _Tracing(provider, provider.get_tracer(INSTRUMENTATION, __version__), service)
        return _active.tracer


def tracer() -> Tracer | None:
    """This process's tracer, or None when tracing is off (the one check instrumented code makes)."""
    active = _active
    return active.tracer if active is not None else None


def flush(timeout_s: float = 5.0) -> None:
    """Export every finished span now (e.g. before a process that may be killed stops)."""
    active = _active
    if active is not None:
        active.provider.force_flush(int(timeout_s * 1000))


def shutdown() -> None:
    """Flush and uninstall the provider (tracing is off again until the next `setup`)."""
    global _active
    with _lock:
        active, _active = _active, None
    if active is not None:
        active.provider.shutdown()
