"""Outputs to the broker: build (the shared record builder), partition, send, wait for the acknowledgement.

Every output is built by `soma.contracts.events.prepare` and handed to the producer without a
partition: the app's producer partitioner (`soma.contracts.partition.aiokafka_partitioner`, Java's
murmur2 over the topic's actual partition count) puts it where every other producer puts its key.
`prepare_outputs` builds all the outputs of one input before any reaches the producer, so an
output the catalog refuses (`RecordTooLarge` over its topic's size limit, a field) fails the
input with nothing half-sent; `send_prepared` only hands records to the producer; `acknowledged`
waits for the broker, so a batch pays one round trip for all its outputs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span, SpanKind

from soma.contracts.events import HEADER_TRACEPARENT, OutgoingRecord, prepare
from soma.observability import telemetry
from streams.logic.output import Output
from streams.runtime.core import StreamCore, log

if TYPE_CHECKING:  # records.py builds on this module
    from streams.runtime.records import Incoming


@dataclass(frozen=True)
class Prepared:
    """An output validated and encoded (within its topic's size limit), not yet handed to the producer."""

    out: Output
    record: OutgoingRecord
    tenant: str
    span: Span | None  # its publish span (tracing on)


class Emitter(StreamCore):
    def prepare_outputs(self, outputs: Sequence[Output], cause: Incoming | None = None) -> list[Prepared]:
        """Build every output (shared record builder); raises before anything is sent if one is refused.

        An output without a tenant takes its cause's."""
        prepared: list[Prepared] = []
        extra: dict[str, str] = {}
        if self.tracer is None and cause is not None and HEADER_TRACEPARENT in cause.headers:
            extra[HEADER_TRACEPARENT] = cause.headers[HEADER_TRACEPARENT].decode(errors="replace")
        try:
            for out in outputs:
                tenant = out.tenant if out.tenant is not None or cause is None else cause.tenant
                if tenant is None:
                    raise ValueError(f"an output to {out.topic} has no tenant and no cause")
                span = None
                if self.tracer is not None:  # a publish span, child of the current (process) span
                    span = self.tracer.start_span(f"publish {out.topic}", kind=SpanKind.PRODUCER)
                    extra = telemetry.inject(span)
                try:
                    record = prepare(self.catalog, self.codec, self.settings, out.topic, dict(out.event),
                                     tenant=tenant, headers=extra)
                except Exception as exc:
                    if span is not None:
                        telemetry.fail(span, exc)
                        span.end()
                    raise
                prepared.append(Prepared(out, record, tenant, span))
        except Exception:
            for done in prepared:  # none of them is sent
                if done.span is not None:
                    done.span.end()
            raise
        return prepared

    async def send_prepared(self, prepared: Sequence[Prepared]) -> list[Awaitable[Any]]:
        """Hand prepared outputs to the producer; returns their delivery futures."""
        pending = []
        for item in prepared:
            record, span = item.record, item.span
            future = await self.app.producer.send(
                record.physical_topic, record.key, record.value, None, None, record.headers,
            )
            if span is not None:
                if span.is_recording():
                    session = record.event.get("session_id")
                    span.set_attributes(telemetry.messaging_attributes(
                        "publish", record.physical_topic, key=record.key, tenant=item.tenant,
                        event_id=str(record.event["event_id"]), session_id=str(session) if session else None,
                    ))
                # ends when the broker acknowledges, not at enqueue, and names the partition then
                telemetry.end_on_delivery(span, future)
            pending.append(future)
            self.metrics.tenant_child(self.metrics.emitted, item.tenant, item.out.topic).inc()
        return pending

    async def send(self, outputs: Sequence[Output], cause: Incoming | None = None) -> list[Awaitable[Any]]:
        """`prepare_outputs` then `send_prepared`: all of the outputs are handed to the producer, or none."""
        return await self.send_prepared(self.prepare_outputs(outputs, cause))

    async def emit(self, outputs: Sequence[Output], cause: Incoming | None = None) -> None:
        """Send outputs and wait until the broker has them all."""
        await self.emit_prepared(self.prepare_outputs(outputs, cause))

    async def emit_prepared(self, prepared: Sequence[Prepared]) -> None:
        for item, future in zip(prepared, await self.send_prepared(prepared), strict=True):
            try:
                await future
            except Exception:
                self.metrics.publish_failures.labels(item.out.topic).inc()
                raise

    async def acknowledged(self, futures: Sequence[Awaitable[Any]], what: str) -> None:
        """Wait for every delivery; say so in the log while some take longer than a broker round trip should."""
        waiting = {asyncio.ensure_future(f) for f in futures}
        started = time.monotonic()
        while waiting:
            done, waiting = await asyncio.wait(waiting, timeout=self.settings.kafka.timeout_s)
            for future in done:
                future.result()  # a failed delivery raises here
            if waiting:
                log.warning("%s: %d %s not acknowledged after %.0fs; still waiting", self.name, len(waiting), what,
                            time.monotonic() - started)
