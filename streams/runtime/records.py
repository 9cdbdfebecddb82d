"""Incoming records: decode the raw bytes of the sources, run a handler, dead-letter what fails.

Sources are read as raw bytes and decoded with the shared codec, so handlers receive decoded
Avro records; an undecodable record, or one that fails for its own reasons, goes to the `dlq`
topic with the error, its source position, key, headers and original bytes, and the stream
continues.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from soma.contracts.events import HEADER_TENANT
from soma.contracts.ids import derive_id
from soma.errors import EventValidationError, SomaError
from soma.observability.logs import log_context
from streams.errors import InvalidInput
from streams.logic.output import Output
from streams.runtime.config_mirror import ConfigMirror
from streams.runtime.core import log
from streams.runtime.tracing import Tracing

# A record's own faults: dead-lettered. Anything else (the broker, a bug) stops the process uncommitted.
RECORD_FAULTS = (InvalidInput, EventValidationError, KeyError, TypeError, ValueError)


@dataclass(frozen=True)
class Incoming:
    """A decoded input record and where it came from."""

    topic: str  # catalog name
    value: dict[str, Any]
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    headers: dict[str, bytes]

    @property
    def tenant(self) -> str:
        return str(self.value["tenant_id"])

    @property
    def event_id(self) -> str:
        return str(self.value["event_id"])


def headers_of(raw: Any) -> dict[str, bytes]:
    items = raw.items() if isinstance(raw, Mapping) else (raw or [])
    return {str(k): (v if isinstance(v, bytes) else str(v or "").encode()) for k, v in items}


class Records(ConfigMirror, Tracing):
    async def decode(self, event: Any) -> Incoming | None:
        """The decoded record of a Faust event, or None after dead-lettering an undecodable one."""
        message = event.message
        topic = self.logical.get(message.topic, message.topic)
        raw = message.value if isinstance(message.value, bytes) else b""
        key = message.key if isinstance(message.key, bytes) else None
        headers = headers_of(message.headers)
        self.metrics.processed.labels(topic, headers.get(HEADER_TENANT, b"unknown").decode()).inc()
        try:
            value = self.codec.decode(topic, raw)
        except SomaError as exc:
            await self.dead_letter(topic, message.partition, message.offset, key, raw, headers, "decode", str(exc))
            return None
        return Incoming(topic, value, message.partition, message.offset, key, raw, headers)

    async def records(self, stream: Any) -> AsyncIterator[Incoming]:
        """Decoded records of the stream; undecodable ones are dead-lettered and skipped."""
        await self.wait_for_config()
        async for event in stream.events():
            record = await self.decode(event)
            if record is not None:
                yield record

    async def handle_safely(self, record: Incoming, handle: Callable[[Incoming], Awaitable[None]]) -> None:
        """Run the handler; a record that fails for its own reasons is dead-lettered (the stream goes on)."""
        with self.log_context(record):
            try:
                await handle(record)
            except RECORD_FAULTS as exc:
                await self.reject(record, exc)

    async def handle_traced(self, record: Incoming, handle: Callable[[Incoming], Awaitable[None]]) -> None:
        """`handle_safely` inside the record's `process` span (when tracing is on)."""
        with self.processing([record]):
            await self.handle_safely(record, handle)

    @staticmethod
    def log_context(record: Incoming) -> Any:
        """Log lines inside carry the record's tenant, event id and position (never its payload)."""
        return log_context(tenant=record.value.get("tenant_id"), event_id=record.value.get("event_id"),
                           topic=record.topic, partition=record.partition, offset=record.offset)

    async def reject(self, record: Incoming, exc: Exception) -> None:
        """Dead-letter a decoded record that failed processing for its own reasons."""
        await self.dead_letter(record.topic, record.partition, record.offset, record.key, record.raw,
                               record.headers, "processing", f"{type(exc).__name__}: {exc}")

    async def dead_letter(
        self, topic: str, partition: int, offset: int, key: bytes | None, raw: bytes,
        headers: Mapping[str, bytes], error_type: str, error: str,
    ) -> None:
        tenant = headers.get(HEADER_TENANT, b"").decode(errors="replace") or "unknown"
        with log_context(tenant=tenant):
            log.warning("%s: dead-lettering %s[%d]@%d: %s", self.name, topic, partition, offset, error)
        self.metrics.dead_letters.labels(error_type, tenant).inc()
        await self.emit([Output("dlq", {
            "event_id": derive_id(f"{self.settings.topic_name(topic)}/{partition}/{offset}", f"dlq:{self.name}"),
            "stream": self.name, "source_topic": topic, "source_partition": partition, "source_offset": offset,
            "error_type": error_type, "error": error[:2000], "original_key": key, "original_value": raw,
            "headers": dict(headers),
        }, tenant)])
