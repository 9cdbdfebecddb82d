"""Incoming records: decode the raw bytes of the sources, run a handler, dead-letter what fails.

Sources are read as raw bytes and decoded with the shared codec, so handlers receive decoded
Avro records. Headers are read tolerantly (a missing or null header, a name or value that is
not UTF-8: nothing raises before the handler). A record that cannot be decoded, or whose
handling raises anything but an infrastructure fault (`streams.runtime.faults`), goes to the
`dlq` topic with its reason, the error, its source position, key, headers and original bytes
(cut down when the whole would not fit the `dlq` topic: `streams.runtime.dlq`), and the stream
continues.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from soma.contracts.events import HEADER_TENANT
from soma.contracts.ids import derive_id
from soma.contracts.limits import RecordTooLarge, size_limit
from soma.contracts.tenants import check_tenant, is_valid_tenant
from soma.observability.logs import log_context
from streams.logic.output import Output
from streams.runtime.core import log
from streams.runtime.dlq import TENANT_CHARS, dead_letter_event, tolerant_text, truncated
from streams.runtime.faults import DECODE, is_infrastructure, reason_of
from streams.runtime.sleep_mirror import SleepMirror
from streams.runtime.tracing import Tracing


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


def _as_bytes(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    return str(data).encode(errors="replace")


def headers_of(raw: Any) -> dict[str, bytes]:
    """Record headers as {name: bytes}: null values as b"", names that are bytes decoded tolerantly."""
    try:
        items = list(raw.items() if isinstance(raw, Mapping) else (raw or []))
    except TypeError:
        return {}
    headers: dict[str, bytes] = {}
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            continue
        name, value = item
        headers[tolerant_text(name) if isinstance(name, bytes | bytearray) else str(name)] = _as_bytes(value)
    return headers


def header_tenant(headers: Mapping[str, bytes]) -> str | None:
    """The `tenant` header as text (invalid UTF-8 replaced), None when absent or empty."""
    return tolerant_text(headers.get(HEADER_TENANT))[:TENANT_CHARS] or None


class Records(SleepMirror, Tracing):
    async def decode(self, event: Any) -> Incoming | None:
        """The decoded record of a Faust event, or None after dead-lettering an undecodable one."""
        message = event.message
        topic = self.logical.get(message.topic, message.topic)
        raw = message.value if isinstance(message.value, bytes) else b""
        key = message.key if isinstance(message.key, bytes) else None
        headers = headers_of(message.headers)
        self.metrics.tenant_child(self.metrics.processed, header_tenant(headers), topic).inc()
        try:
            value = self.codec.decode(topic, raw)
            if not isinstance(value.get("tenant_id"), str) or not isinstance(value.get("event_id"), str):
                raise ValueError(f"{topic}: the record has no tenant_id or event_id")
            check_tenant(value["tenant_id"], topic)  # the same rule as at the edge: no ':', space, control
        except Exception as exc:
            if is_infrastructure(exc):
                raise
            await self.dead_letter(topic, message.partition, message.offset, key, raw, headers, DECODE,
                                   str(exc) or type(exc).__name__, header_tenant(headers))
            return None
        return Incoming(topic, value, message.partition, message.offset, key, raw, headers)

    async def handle_safely(self, record: Incoming, handle: Callable[[Incoming], Awaitable[None]]) -> None:
        """Run the handler; a record that fails for any reason but the infrastructure is dead-lettered."""
        with self.log_context(record):
            try:
                await handle(record)
            except Exception as exc:
                if is_infrastructure(exc):
                    raise
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

    async def reject(self, record: Incoming, exc: BaseException) -> None:
        """Dead-letter a decoded record that failed processing for its own reasons."""
        await self.dead_letter(record.topic, record.partition, record.offset, record.key, record.raw,
                               record.headers, reason_of(exc), f"{type(exc).__name__}: {exc}",
                               record.tenant[:TENANT_CHARS])

    async def dead_letter(
        self, topic: str, partition: int, offset: int, key: bytes | None, raw: bytes,
        headers: Mapping[str, bytes], error_type: str, error: str, tenant: str | None = None,
    ) -> None:
        """Send the DLQ record (cut down to fit the `dlq` topic when needed) and wait for the broker."""
        tenant = tenant or header_tenant(headers) or "unknown"
        if not is_valid_tenant(tenant):  # the record's own tenant id is unusable: file it under "unknown"
            tenant = "unknown"
        with log_context(tenant=tenant):
            log.warning("%s: dead-lettering %s[%d]@%d (%s): %s", self.name, topic, partition, offset, error_type,
                        error[:500])
        self.metrics.tenant_child(self.metrics.dead_letters, tenant, error_type).inc()
        event = dead_letter_event(
            event_id=derive_id(f"{self.settings.topic_name(topic)}/{partition}/{offset}", f"dlq:{self.name}"),
            stream=self.name, topic=topic, partition=partition, offset=offset, key=key, raw=raw, headers=headers,
            error_type=error_type, error=error,
        )
        try:
            prepared = self.prepare_outputs([Output("dlq", event, tenant)])
        except RecordTooLarge:
            limit = size_limit(self.catalog.topic("dlq"), self.settings)
            prepared = self.prepare_outputs([Output("dlq", truncated(event, limit), tenant)])
        await self.emit_prepared(prepared)
