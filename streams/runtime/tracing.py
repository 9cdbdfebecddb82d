"""The `process` span of a record or a batch (when tracing is on)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from soma.observability import telemetry
from streams.runtime.core import StreamCore

if TYPE_CHECKING:  # records.py builds on this module
    from streams.runtime.records import Incoming

NO_SPAN: AbstractContextManager[None] = nullcontext()  # reusable: what `processing` is with tracing off


class Tracing(StreamCore):
    def processing(self, records: Sequence[Incoming]) -> AbstractContextManager[Any]:
        """The current `process` span of one record (its parent: the record's traceparent) or of a batch
        (linked to every record's context; parented like a single record when the batch holds one)."""
        if self.tracer is None:
            return NO_SPAN
        return telemetry.current_span(
            self.tracer, f"process {records[0].topic}" if records else f"process {self.name}",
            kind=SpanKind.CONSUMER,
            parent=telemetry.extract(records[0].headers) if len(records) == 1 else None,
            links=telemetry.links_of([telemetry.extract(r.headers) for r in records]) if len(records) > 1 else (),
            attributes=self._process_attributes(records),
        )

    def _process_attributes(self, records: Sequence[Incoming]) -> dict[str, Any]:
        group = str(self.app.conf.id)
        if len(records) != 1:
            return {"messaging.system": "kafka", "messaging.operation.type": "process",
                    "messaging.operation.name": "process", "messaging.consumer.group.name": group,
                    "messaging.batch.message_count": len(records), "soma.stream": self.name}
        record = records[0]
        session = record.value.get("session_id")
        return telemetry.messaging_attributes(
            "process", self.settings.topic_name(record.topic), partition=record.partition, offset=record.offset,
            key=record.key, group=group, tenant=record.tenant, event_id=record.event_id,
            session_id=str(session) if session is not None else None,
        ) | {"soma.stream": self.name}
