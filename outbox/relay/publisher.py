"""A claimed batch on its way to the broker: produce every row, collect every delivery report.

The relay's producer is idempotent with `acks=all` (`Settings.producer_config`), so a retry
inside librdkafka never duplicates or reorders a record. Rows are published exactly as
stored: key, payload and headers; nothing is re-encoded.

A row `produce()` refuses (any `KafkaException` such as MSG_SIZE_TOO_LARGE, a header or key
that cannot be encoded, a local queue that stays full past the delivery timeout) is reported
for that row alone, like a failed delivery report: the rest of the batch is still produced
and every report is recorded, so nothing acknowledged is published again after a restart.
The later rows of a refused row's key in the same batch are held back (released unchanged),
so they do not overtake it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from opentelemetry.trace import Span, SpanKind, Tracer
from sqlalchemy import Connection

from outbox.relay.claim import ClaimedRow
from soma.clients import kafka_producer
from soma.contracts.events import OutgoingRecord
from soma.errors import first_line
from soma.observability import telemetry
from soma.settings import Settings

log = logging.getLogger("outbox.relay")

MAX_ERROR_CHARS = 1000  # a row's last_error is one line of at most this many characters
QUEUE_FULL = "_QUEUE_FULL"  # the code of a row that found the local queue full past the delivery timeout
ENCODING = "_ENCODING"  # the code of a row whose key or headers cannot be encoded
# The relay hands librdkafka whole claimed batches, so it batches without waiting: the shared
# 5 ms linger only added 5 ms to every row's commit-to-ack at low rates (under load, records
# still gather while earlier requests are in flight).
LINGER_MS = 0.5


class Batch:
    """Rows claimed in one transaction (`conn`, still open) and what the broker said about each."""

    def __init__(self, conn: Connection, rows: list[ClaimedRow], held: frozenset[int] = frozenset()) -> None:
        self.conn, self.rows = conn, rows
        self.held = held  # ids not to produce (an older row of their key is not in this batch)
        n = len(rows)
        self.partitions = [0] * n
        self.offsets = [0] * n
        self.acked_at = [0.0] * n
        self.errors: list[str | None] = [None] * n
        self.codes: list[str | None] = [None] * n  # the error's code name (judge.row_fault classifies it)
        self.produced = 0  # rows handed to the producer, refused or held back (a prefix of `rows`)
        self.outstanding = 0  # produced rows still without a delivery report
        self.closed = False  # no further row of this batch will be produced
        self.spans: list[Span | None] | None = None  # publish spans, when tracing is on

    @property
    def complete(self) -> bool:
        return self.closed and self.outstanding == 0

    def held_back(self, index: int) -> None:
        """Row `index` is not produced (an older row of its key was refused in this batch): it stays
        unreported, so it is released at commit unchanged and claimed again after that row."""
        self.produced += 1
        if self.spans is not None:
            span = self.spans[index]
            if span is not None:
                telemetry.end_delivery(span, "held back behind an older row of its key")

    def refused(self, index: int, code: str, message: str) -> None:
        """`produce()` refused row `index`: it counts as produced and reported, with this error."""
        self.acked_at[index] = time.time()
        self.codes[index] = code
        self.errors[index] = f"{code}: {message}"[:MAX_ERROR_CHARS]
        self.produced += 1
        if self.spans is not None:
            span = self.spans[index]
            if span is not None:
                telemetry.end_delivery(span, self.errors[index])

    def on_delivery(self, index: int, err: KafkaError | None, msg: Message) -> None:
        self.acked_at[index] = time.time()
        if err is not None:
            self.codes[index] = err.name()
            self.errors[index] = f"{err.name()}: {err.str()}"
        else:
            self.partitions[index] = msg.partition() or 0
            self.offsets[index] = msg.offset() or 0
        self.outstanding -= 1
        if self.spans is not None:
            span = self.spans[index]
            if span is not None:
                telemetry.end_delivery(span, self.errors[index], self.partitions[index], self.offsets[index])


class Publisher:
    """The relay's one producer. `fatal` is set when librdkafka reports a fatal error."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.fatal: str | None = None
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        def on_error(err: KafkaError) -> None:
            if err.fatal():
                self.fatal = err.str()
                log.error("kafka producer fatal error: %s", err.str())

        timeout_ms = int(self.settings.relay.delivery_timeout_s * 1000)
        # A topic the broker does not know fails as UNKNOWN_TOPIC_OR_PART (the row's fault: it counts)
        # within half the delivery timeout, instead of as a timeout (which would not count).
        propagation_ms = min(30_000, max(100, timeout_ms // 2))
        return kafka_producer(self.settings, **{
            "message.timeout.ms": timeout_ms, "topic.metadata.propagation.max.ms": propagation_ms, "error_cb": on_error,
            "linger.ms": LINGER_MS,
        })

    def send(self, batch: Batch, keep_going: Callable[[], bool] = lambda: True) -> None:
        """Hand every row of `batch` to the producer (waiting for queue space when it is full)."""
        topic_name = self.settings.topic_name
        physical: dict[str, str] = {}
        produce = self._producer.produce
        tracer = telemetry.tracer()  # None when tracing is off: then no per-row work beyond this check
        spans: list[Span | None] = [None] * len(batch.rows) if tracer is not None else []
        if tracer is not None:
            batch.spans = spans
        timeout_s = self.settings.relay.delivery_timeout_s
        held: set[tuple[str, str, str]] = set()  # keys with a refused row in this batch: per-key order
        for index, row in enumerate(batch.rows):
            if row.id in batch.held or (held and (row.tenant_id, row.topic, row.key) in held):
                batch.held_back(index)
                continue
            topic = physical.get(row.topic) or physical.setdefault(row.topic, topic_name(row.topic))
            try:
                key = row.key.encode()
                if tracer is None:
                    headers: Any = [(name, value.encode()) for name, value in row.headers.items()]
                else:
                    headers = self._traced(tracer, spans, index, row, topic)
            except (UnicodeError, AttributeError, TypeError) as exc:  # e.g. a lone surrogate in a legacy row
                batch.refused(index, ENCODING, f"key or headers cannot be encoded: {first_line(exc)}")
                held.add((row.tenant_id, row.topic, row.key))
                continue
            callback: Any = partial(batch.on_delivery, index)
            full_since: float | None = None
            while True:
                try:
                    produce(topic, value=row.payload, key=key, headers=headers, on_delivery=callback)
                except BufferError:  # local queue full: serve delivery reports, then retry
                    self._producer.poll(0.05)
                    if not keep_going():
                        batch.closed = True  # the rest stays unproduced and is released at commit
                        span = spans[index] if spans else None
                        if span is not None:
                            telemetry.end_delivery(span, "relay stopping: not produced")
                        return
                    full_since = full_since or time.monotonic()
                    if time.monotonic() - full_since < timeout_s:
                        continue
                    batch.refused(index, QUEUE_FULL, f"local producer queue full for {timeout_s:g}s")
                except KafkaException as exc:  # refused for this row alone (e.g. MSG_SIZE_TOO_LARGE)
                    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                    code = err.name() if err is not None else "_KAFKA_EXCEPTION"
                    batch.refused(index, code, err.str() if err is not None else first_line(exc))
                except (TypeError, ValueError) as exc:  # a value the client cannot serialize
                    batch.refused(index, ENCODING, first_line(exc))
                else:
                    batch.produced += 1
                    batch.outstanding += 1
                break
            if batch.errors[index] is not None:
                held.add((row.tenant_id, row.topic, row.key))
        batch.closed = True

    @staticmethod
    def _traced(
        tracer: Tracer, spans: list[Span | None], index: int, row: ClaimedRow, topic: str
    ) -> list[tuple[str, bytes]]:
        """Start the row's publish span (child of the trace context stored with the row; it ends in
        the delivery callback) and return the row's headers carrying the span's own context."""
        span = tracer.start_span(f"publish {row.topic}", context=telemetry.extract(row.headers),
                                 kind=SpanKind.PRODUCER)
        if span.is_recording():
            span.set_attributes(telemetry.messaging_attributes("publish", topic, key=row.key, tenant=row.tenant_id)
                                | {"soma.outbox.row_id": row.id, "soma.outbox.attempt": row.attempts + 1})
        spans[index] = span
        headers = {**row.headers, **telemetry.inject(span)}
        return [(name, value.encode()) for name, value in headers.items()]

    def produce_event(self, record: OutgoingRecord, on_delivery: Callable[[KafkaError | None, Message], None]) -> None:
        """One prepared catalog event outside any batch (the circuit's sleep requests)."""
        headers: Any = record.headers
        self._producer.produce(record.physical_topic, value=record.value, key=record.key, headers=headers,
                               on_delivery=on_delivery)

    def poll(self, timeout_s: float) -> int:
        """Serve delivery reports (waits up to `timeout_s` for the first one)."""
        return int(self._producer.poll(timeout_s))

    def queued(self) -> int:
        return len(self._producer)

    def renew_if_fatal(self) -> bool:
        """Replace the producer after a fatal error (call with nothing in flight)."""
        if self.fatal is None:
            return False
        self._producer.purge()
        self._producer.poll(0)
        self.fatal = None
        self._producer = self._new_producer()
        return True

    def close(self, timeout_s: float) -> None:
        self._producer.flush(timeout_s)
