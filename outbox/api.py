"""The public way to emit: `emit(session, topic, event, tenant=..., dedupe_key=...)`, sync or asyncio.

    from outbox import emit, emit_async

    with Session(engine) as session, session.begin():
        session.add(order)                         # the service's own write
        emit(session, "chat.messages", {...}, tenant="t1", dedupe_key=f"order-{order.id}")

    async with AsyncSession(async_engine) as session, session.begin():
        await emit_async(session, "chat.messages", {...}, tenant="t1", dedupe_key="...")

The event joins the caller's transaction as an outbox row: it exists only if the caller commits,
and the relay publishes it after that. The module-level functions use a default `Emitter` built on
first use from `load_settings()` (catalog, codec, writer); `Emitter(settings)` is the explicit form.
Validation, encoding and the duplicate rule are `OutboxWriter`'s: a bad tenant, dedupe key, header
or field is one `EmitError` line naming it, raised before anything is written; emitting the same
(tenant, dedupe key) again is a no-op returning the row already there.

On top of the writer, two rules for callers outside the platform:
- `key=` cannot move a record: the catalog's key template places every event of an entity (a session,
  a tenant, a setting) on one partition, which is what keeps per-entity order and compaction right.
  A given key must equal the key the catalog builds from the event (a check for callers who compute
  it), otherwise the emit is refused; a service that needs another key declares it in its catalog.
- `headers=` adds headers; the platform's own (tenant, dedupe-key, event-type, replay-of, and the
  trace context traceparent/tracestate, which comes from the current span) are refused.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from outbox.errors import EmitError
from outbox.models import OutboxEvent
from outbox.writer import RESERVED_HEADERS, OutboxWriter
from soma.contracts.catalog import Catalog, catalog_for
from soma.contracts.codec import Codec
from soma.contracts.events import HEADER_TRACEPARENT
from soma.contracts.typed import TypedEmit, TypedEmitAsync
from soma.errors import SomaError
from soma.settings import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

# The platform's headers: the writer's own plus the trace context, which a caller may not forge.
PLATFORM_HEADERS = RESERVED_HEADERS | {HEADER_TRACEPARENT, "tracestate"}


class Emitter:
    """Emits catalog events into the outbox inside a caller's `Session` or `AsyncSession`."""

    def __init__(self, settings: Settings | None = None, catalog: Catalog | None = None) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.catalog = catalog if catalog is not None else catalog_for(self.settings)
        self.codec = Codec(self.catalog, self.settings)
        self.writer = OutboxWriter(self.catalog, self.codec, self.settings)

    def _check(self, topic: str, event: Mapping[str, Any], tenant: str, key: str | None,
               headers: Mapping[str, str] | None) -> None:
        if not isinstance(event, Mapping):
            raise EmitError(f"{topic}: the event must be a mapping of field names to values (tenant {tenant!r})")
        for name in headers or {}:
            if not isinstance(name, str) or name.lower() in PLATFORM_HEADERS:
                raise EmitError(
                    f"{topic}: header {name!r} is set by the platform and cannot be given (tenant {tenant!r})"
                )
        if key is None:
            return
        if not isinstance(key, str):
            raise EmitError(f"{topic}: key must be a string, got {type(key).__name__} (tenant {tenant!r})")
        try:
            spec = self.catalog.topic(topic)
        except SomaError as exc:
            raise EmitError(str(exc)) from exc
        expected = spec.build_key({"tenant_id": tenant, **event})
        if key != expected:
            raise EmitError(
                f"{topic}: key {key[:80]!r} differs from the catalog's key {expected[:80]!r} (template"
                f" {spec.key!r}, tenant {tenant!r}); the key chooses the partition, so it cannot be overridden"
            )

    def emit(self, session: Session, topic: str, event: Mapping[str, Any], *, tenant: str, dedupe_key: str,
             key: str | None = None, headers: Mapping[str, str] | None = None) -> OutboxEvent:
        """Add one event to the caller's transaction (never commits); returns its outbox row."""
        self._check(topic, event, tenant, key, headers)
        return self.writer.emit(session, topic, event, tenant=tenant, dedupe_key=dedupe_key, key=key,
                                headers=headers)

    async def emit_async(self, session: AsyncSession, topic: str, event: Mapping[str, Any], *, tenant: str,
                         dedupe_key: str, key: str | None = None,
                         headers: Mapping[str, str] | None = None) -> OutboxEvent:
        """`emit` for an `AsyncSession` (e.g. `postgresql+psycopg://` through `create_async_engine`)."""
        self._check(topic, event, tenant, key, headers)
        # The writer's statements run on the AsyncSession's own connection, in its transaction.
        return await session.run_sync(
            lambda sync: self.writer.emit(sync, topic, event, tenant=tenant, dedupe_key=dedupe_key, key=key,
                                          headers=headers)
        )


_default: Emitter | None = None
_default_lock = threading.Lock()


def default_emitter() -> Emitter:
    """The process's emitter, built from `load_settings()` on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Emitter()
    return _default


def _emit(session: Session, topic: str, event: Mapping[str, Any], *, tenant: str, dedupe_key: str,
          key: str | None = None, headers: Mapping[str, str] | None = None) -> OutboxEvent:
    return default_emitter().emit(session, topic, event, tenant=tenant, dedupe_key=dedupe_key, key=key,
                                  headers=headers)


async def _emit_async(session: AsyncSession, topic: str, event: Mapping[str, Any], *, tenant: str,
                      dedupe_key: str, key: str | None = None,
                      headers: Mapping[str, str] | None = None) -> OutboxEvent:
    return await default_emitter().emit_async(session, topic, event, tenant=tenant, dedupe_key=dedupe_key,
                                              key=key, headers=headers)


# Typed per catalog topic (soma/contracts/typed.py, generated): a wrong field is a type error.
emit: TypedEmit[Session, OutboxEvent] = _emit
emit_async: TypedEmitAsync[AsyncSession, OutboxEvent] = _emit_async
