"""Producing and consuming catalog events: the one place records get their key, headers and encoding.

Services, the outbox relay, the streams and the CLI all go through `EventProducer` /
`EventConsumer` (or `prepare`), so no module builds its own serializer or headers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from confluent_kafka import KafkaError, Message, TopicPartition
from opentelemetry.trace import Span, SpanKind

from soma.clients import kafka_consumer, kafka_producer
from soma.contracts.catalog import Catalog
from soma.contracts.codec import Codec
from soma.contracts.limits import check_record_size, record_size, size_limit
from soma.contracts.tenants import check_tenant
from soma.errors import EventValidationError, InfrastructureUnavailable, SomaError
from soma.observability import telemetry
from soma.settings import Settings, env_name

HEADER_TENANT = "tenant"
HEADER_DEDUPE_KEY = "dedupe-key"
HEADER_EVENT_TYPE = "event-type"
HEADER_TRACEPARENT = "traceparent"
HEADER_REPLAY_OF = "replay-of"
HEADER_REDRIVE_OF = "redrive-of"  # a dead letter sent back to its source topic: dlq:<partition>:<offset>


_trace_ids = random.Random()  # noqa: S311 -- trace ids must be unique, not secret (like OpenTelemetry's)


def new_traceparent() -> str:
    """A W3C trace context for a record that starts a trace (version 00, sampled)."""
    return f"00-{_trace_ids.getrandbits(128) or 1:032x}-{_trace_ids.getrandbits(64) or 1:016x}-01"


@dataclass(frozen=True)
class OutgoingRecord:
    """An event validated and encoded, ready to hand to a producer."""

    topic: str  # logical (catalog) name
    physical_topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event: Mapping[str, Any]


@dataclass(frozen=True)
class DeliveredRecord:
    topic: str
    partition: int
    offset: int
    key: str
    event_id: str


@dataclass(frozen=True)
class ConsumedEvent:
    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    value: dict[str, Any]
    timestamp_ms: int | None = None
    raw: bytes = field(default=b"", repr=False)
    error: str | None = None  # set (and `value` empty) when the record could not be decoded


def prepare(
    catalog: Catalog,
    codec: Codec,
    settings: Settings,
    topic: str,
    event: Mapping[str, Any],
    *,
    tenant: str,
    key: str | None = None,
    dedupe_key: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> OutgoingRecord:
    """Fill the envelope, validate and encode `event`, and build its key and headers.

    Raises `EventValidationError` (naming the field) before anything touches the broker, and its
    `RecordTooLarge` when the record would exceed the topic's size limit.
    """
    spec = catalog.topic(topic)
    check_tenant(tenant, topic)
    filled = codec.fill_defaults(topic, {**event, "tenant_id": event.get("tenant_id", tenant)})
    codec.reject_unknown_fields(topic, filled)
    if filled["tenant_id"] != tenant:
        raise EventValidationError(
            f"{topic}: field 'tenant_id' is {filled['tenant_id']!r} but the tenant is {tenant!r}"
        )
    value = codec.encode(topic, filled)
    record_key = key if key is not None else spec.build_key(filled)
    all_headers = {
        HEADER_TENANT: tenant,
        HEADER_DEDUPE_KEY: dedupe_key or str(filled["event_id"]),
        HEADER_EVENT_TYPE: spec.value_schema,
        HEADER_TRACEPARENT: new_traceparent(),
        **(headers or {}),
    }
    encoded_key = record_key.encode()
    encoded_headers = [(name, text.encode()) for name, text in all_headers.items()]
    check_record_size(topic, record_size(encoded_key, value, encoded_headers), size_limit(spec, settings))
    return OutgoingRecord(
        topic=topic,
        physical_topic=settings.topic_name(topic),
        key=encoded_key,
        value=value,
        headers=encoded_headers,
        event=filled,
    )


def _as_bytes(data: str | bytes | None) -> bytes:
    if data is None:
        return b""
    return data.encode() if isinstance(data, str) else data


def _headers(msg: Message) -> dict[str, str]:
    raw: Any = msg.headers() or []  # librdkafka gives a list of (name, bytes | None)
    return {name: _as_bytes(data).decode(errors="replace") for name, data in raw}


class EventProducer:
    """An idempotent (`acks=all`) producer of catalog events."""

    def __init__(self, settings: Settings, catalog: Catalog, codec: Codec) -> None:
        self.settings, self.catalog, self.codec = settings, catalog, codec
        self._producer = kafka_producer(settings)

    def prepare(self, topic: str, event: Mapping[str, Any], *, tenant: str, **options: Any) -> OutgoingRecord:
        return prepare(self.catalog, self.codec, self.settings, topic, event, tenant=tenant, **options)

    def send_all(self, records: Sequence[OutgoingRecord], timeout_s: float | None = None) -> list[DeliveredRecord]:
        """Send prepared records and wait for every acknowledgement (in input order)."""
        results: list[DeliveredRecord | str | None] = [None] * len(records)
        tracer = telemetry.tracer()
        spans: list[Span | None] = [None] * len(records)

        def on_delivery(index: int) -> Any:
            def callback(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    results[index] = err.str()
                else:
                    record = records[index]
                    results[index] = DeliveredRecord(
                        record.topic, msg.partition() or 0, msg.offset() or 0,
                        record.key.decode(), str(record.event["event_id"]),
                    )
                span = spans[index]
                if span is not None:  # the publish span ends at the broker's answer, not at enqueue
                    telemetry.end_delivery(span, err.str() if err is not None else None, msg.partition(), msg.offset())
            return callback

        for index, record in enumerate(records):
            if tracer is not None:
                spans[index], record = self._traced(tracer, record)
            self._produce(record, on_delivery(index))
        deadline = timeout_s if timeout_s is not None else self.settings.kafka.timeout_s * 3
        if self._producer.flush(deadline) > 0:
            raise InfrastructureUnavailable(
                f"kafka: no acknowledgement from {self.settings.kafka.bootstrap} "
                f"({env_name('kafka_bootstrap')}) within {deadline:.0f}s"
            )
        failures = [r for r in results if not isinstance(r, DeliveredRecord)]
        if failures:
            raise InfrastructureUnavailable(f"kafka: {len(failures)} record(s) not delivered: {failures[0]}")
        return [r for r in results if isinstance(r, DeliveredRecord)]

    def send(self, topic: str, event: Mapping[str, Any], *, tenant: str, **options: Any) -> DeliveredRecord:
        """Validate, encode, send one event and wait for the broker's acknowledgement."""
        return self.send_all([self.prepare(topic, event, tenant=tenant, **options)])[0]

    @staticmethod
    def _traced(tracer: Any, record: OutgoingRecord) -> tuple[Span, OutgoingRecord]:
        """A publish span (child of the current span) and the record carrying its trace context."""
        span: Span = tracer.start_span(f"publish {record.topic}", kind=SpanKind.PRODUCER)
        if span.is_recording():
            span.set_attributes(telemetry.messaging_attributes(
                "publish", record.physical_topic, key=record.key, tenant=str(record.event.get("tenant_id")),
                event_id=str(record.event.get("event_id")), session_id=record.event.get("session_id"),
            ))
        return span, replace(record, headers=telemetry.with_trace_headers(record.headers, span))

    def _produce(self, record: OutgoingRecord, callback: Any) -> None:
        while True:
            try:
                self._producer.produce(
                    record.physical_topic, key=record.key, value=record.value,
                    headers=cast(Any, record.headers),  # the stub's list type is invariant
                    on_delivery=callback,
                )
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)

    def close(self) -> None:
        self._producer.flush(self.settings.kafka.timeout_s)


class EventConsumer:
    """Reads catalog topics and decodes each record with the codec."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        codec: Codec,
        topics: Sequence[str],
        group_id: str,
        *,
        from_beginning: bool = False,
        commit: bool = True,
        on_revoke: Callable[[list[tuple[str, int]]], None] | None = None,
        resolve_start: bool = False,
    ) -> None:
        """`commit=False`: nothing is committed by `poll`; the caller commits with `commit_offsets`.
        `on_revoke` gets the (logical topic, partition) pairs leaving this consumer at a rebalance,
        called inside `poll` before they go, so a caller can commit what it has processed of them.
        `resolve_start`: fix each new partition's start at assignment (see `_assigned`)."""
        for topic in topics:
            catalog.topic(topic)  # an undocumented topic is an error before connecting
        self.settings, self.catalog, self.codec, self.commit = settings, catalog, codec, commit
        self._consumer = kafka_consumer(
            settings, group_id, **{"auto.offset.reset": "earliest" if from_beginning else "latest"}
        )
        self._logical = {settings.topic_name(t): t for t in topics}
        self.from_beginning, self.resolve_start = from_beginning, resolve_start
        self.assigned = False  # set once the group gave this consumer its partitions (see `_assigned`)
        callbacks: dict[str, Any] = {"on_assign": self._assigned}
        if on_revoke is not None:
            def revoked(_: Any, partitions: list[TopicPartition]) -> None:
                on_revoke([(self._logical.get(p.topic, p.topic), p.partition) for p in partitions])

            callbacks |= {"on_revoke": revoked, "on_lost": revoked}
        self._consumer.subscribe(list(self._logical), **callbacks)

    def _assigned(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Without `from_beginning`, a partition the group never committed starts at its end as of now
        (resolved here, not at the first fetch), so every record produced after `assigned` is read."""
        if self.resolve_start and not self.from_beginning and partitions:
            timeout = self.settings.kafka.timeout_s
            resolved = consumer.committed(partitions, timeout=timeout)
            for part in resolved:
                if part.offset < 0:
                    part.offset = consumer.get_watermark_offsets(part, timeout=timeout)[1]
            consumer.assign(resolved)
        self.assigned = True

    def poll(self, timeout_s: float) -> ConsumedEvent | None:
        msg = self._consumer.poll(timeout_s)
        if msg is None:
            return None
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return None
            raise InfrastructureUnavailable(f"kafka: consume failed: {error.str()}")
        topic = self._logical[msg.topic() or ""]
        raw = _as_bytes(msg.value())
        key = msg.key()
        decoded: dict[str, Any] = {}
        problem: str | None = None
        try:
            decoded = self.codec.decode(topic, raw)
        except InfrastructureUnavailable:
            raise  # e.g. the schema registry is down: not the record's fault, and nothing is committed
        except SomaError as exc:  # a poison record is reported, not fatal to the reader
            problem = str(exc)
        event = ConsumedEvent(
            topic=topic,
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
            key=_as_bytes(key).decode(errors="replace") if key is not None else None,
            headers=_headers(msg),
            value=decoded,
            error=problem,
            timestamp_ms=msg.timestamp()[1],
            raw=raw,
        )
        if self.commit:
            self._consumer.commit(message=msg, asynchronous=False)
        return event

    def events(self, max_messages: int | None = None, idle_timeout_s: float | None = None) -> Iterator[ConsumedEvent]:
        """Yield events until `max_messages` or `idle_timeout_s` without a record (None: no limit)."""
        count = 0
        last = time.monotonic()
        while max_messages is None or count < max_messages:
            event = self.poll(0.5)
            if event is None:
                if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                    return
                continue
            count += 1
            last = time.monotonic()
            yield event

    def _partitions(self, offsets: Mapping[tuple[str, int], int]) -> list[TopicPartition]:
        return [TopicPartition(self.settings.topic_name(topic), partition, offset)
                for (topic, partition), offset in offsets.items()]

    def commit_offsets(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Commit, synchronously, the next offset to read per (logical topic, partition)."""
        if offsets:
            self._consumer.commit(offsets=self._partitions(offsets), asynchronous=False)

    def committed(self, partitions: Sequence[tuple[str, int]], timeout_s: float = 10.0) -> dict[tuple[str, int], int]:
        """The group's committed next offset per (logical topic, partition); -1001 when none."""
        found = self._consumer.committed(self._partitions(dict.fromkeys(partitions, -1001)), timeout=timeout_s)
        return {(self._logical.get(p.topic, p.topic), p.partition): p.offset for p in found}

    def close(self) -> None:
        self._consumer.close()
