"""The transactional writer: events join the caller's database transaction as outbox rows.

`OutboxWriter.emit(session, topic, event, tenant=..., dedupe_key=...)` validates and encodes
the event with the topic's schema (through `soma.events.prepare`, the one serializer) before
anything is written, then inserts one row in the caller's transaction; it never commits. The
row is idempotent on (tenant, dedupe key): emitting the same pair again is a no-op that returns
the row already there. A rollback of the caller's transaction leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.trace import Span, SpanKind, Tracer
from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from outbox.errors import EmitError
from outbox.models import OutboxEvent
from soma.contracts.catalog import Catalog
from soma.contracts.codec import Codec
from soma.contracts.events import (
    HEADER_DEDUPE_KEY,
    HEADER_EVENT_TYPE,
    HEADER_REPLAY_OF,
    HEADER_TENANT,
    HEADER_TRACEPARENT,
    OutgoingRecord,
    prepare,
)
from soma.errors import SomaError, first_line
from soma.observability import telemetry
from soma.settings import Settings

# Headers the writer sets itself; a caller may add others (e.g. its own traceparent), not these.
RESERVED_HEADERS = frozenset({HEADER_TENANT, HEADER_DEDUPE_KEY, HEADER_EVENT_TYPE, HEADER_REPLAY_OF})
TENANT_MAX = 200  # the columns' lengths (outbox/models.py)
DEDUPE_KEY_MAX = 400
ROWS_PER_STATEMENT = 500  # for the look-up of existing rows: 2 bound values each
# Created at the insert's own time, not the transaction's start: the latency metric counts from it.
INSERT = (
    insert(OutboxEvent)
    .values(created_at=func.clock_timestamp())
    .on_conflict_do_nothing(index_elements=["tenant_id", "dedupe_key"])
    .returning(OutboxEvent)
)


@dataclass(frozen=True)
class Emission:
    """One event to emit (for `emit_many`)."""

    topic: str
    event: Mapping[str, Any]
    tenant: str
    dedupe_key: str
    key: str | None = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Emitted:
    """The outbox row of an emission; `created` is False when (tenant, dedupe key) already had one."""

    row: OutboxEvent
    created: bool


def _check(emission: Emission) -> None:
    tenant, dedupe_key = emission.tenant, emission.dedupe_key
    if not isinstance(tenant, str) or not tenant.strip() or len(tenant) > TENANT_MAX:
        raise EmitError(f"{emission.topic}: tenant must be a non-empty string of at most {TENANT_MAX} characters")
    if not isinstance(dedupe_key, str) or not dedupe_key.strip() or len(dedupe_key) > DEDUPE_KEY_MAX:
        raise EmitError(
            f"{emission.topic}: dedupe_key must be a non-empty string of at most {DEDUPE_KEY_MAX} characters"
            f" (tenant {tenant!r})"
        )
    for name, value in (emission.headers or {}).items():
        if name.lower() in RESERVED_HEADERS:
            raise EmitError(f"{emission.topic}: header {name!r} is set by the outbox and cannot be given")
        if not isinstance(value, str):
            raise EmitError(f"{emission.topic}: header {name!r} must be a string, got {type(value).__name__}")


def row_values(record: OutgoingRecord, tenant: str, dedupe_key: str) -> dict[str, Any]:
    """The outbox row for a prepared record: exactly what the relay will publish."""
    headers = {name: value.decode() for name, value in record.headers}
    return {
        "tenant_id": tenant,
        "dedupe_key": dedupe_key,
        "topic": record.topic,
        "key": record.key.decode(),
        "headers": headers,
        "payload": record.value,
        "event_type": headers[HEADER_EVENT_TYPE],
        "event_id": str(record.event["event_id"]),
    }


class OutboxWriter:
    """Validates, encodes and inserts events into the outbox, inside the caller's transaction."""

    def __init__(self, catalog: Catalog, codec: Codec, settings: Settings) -> None:
        self.catalog, self.codec, self.settings = catalog, codec, settings

    def prepare(self, emission: Emission) -> dict[str, Any]:
        """Check and encode one emission into row values (raises `EmitError`; touches no database)."""
        _check(emission)
        try:
            record = prepare(
                self.catalog, self.codec, self.settings, emission.topic, emission.event,
                tenant=emission.tenant, key=emission.key, dedupe_key=emission.dedupe_key,
                headers=emission.headers,
            )
        except SomaError as exc:
            raise EmitError(f"{exc} (tenant {emission.tenant!r}, dedupe key {emission.dedupe_key!r})") from exc
        return row_values(record, emission.tenant, emission.dedupe_key)

    def emit(
        self,
        session: Session,
        topic: str,
        event: Mapping[str, Any],
        *,
        tenant: str,
        dedupe_key: str,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> OutboxEvent:
        """Add one event to the caller's transaction; returns its row (the existing one on a repeat)."""
        return self.write(session, [Emission(topic, event, tenant, dedupe_key, key, headers)])[0].row

    def emit_many(self, session: Session, emissions: Sequence[Emission]) -> list[OutboxEvent]:
        """Add many events in one transaction (multi-row INSERTs); rows in the order given."""
        return [emitted.row for emitted in self.write(session, emissions)]

    def write(self, session: Session, emissions: Sequence[Emission]) -> list[Emitted]:
        """Every event is validated and encoded first: one bad event and nothing is inserted.

        With tracing on, each emission gets a `create <topic>` span (child of the caller's current
        span, or of the traceparent header it passed) whose context is stored in the row's headers:
        the event's trace starts here. The spans end once the rows are inserted.
        """
        tracer = telemetry.tracer()
        if tracer is None:
            return self._insert(session, [self.prepare(emission) for emission in emissions])
        spans: list[Span] = []
        try:
            values = []
            for emission in emissions:
                span, row = self._prepare_traced(tracer, emission)
                spans.append(span)
                values.append(row)
            return self._insert(session, values)
        except Exception as exc:
            for span in spans:
                telemetry.fail(span, exc)
            raise
        finally:
            for span in spans:
                span.end()

    def _prepare_traced(self, tracer: Tracer, emission: Emission) -> tuple[Span, dict[str, Any]]:
        given = emission.headers or {}
        parent = telemetry.extract(given) if HEADER_TRACEPARENT in given else None
        span = tracer.start_span(f"create {emission.topic}", context=parent, kind=SpanKind.PRODUCER)
        try:
            row = self.prepare(replace(emission, headers={**given, **telemetry.inject(span)}))
        except Exception as exc:
            telemetry.fail(span, exc)
            span.end()
            raise
        if span.is_recording():
            span.set_attributes(telemetry.messaging_attributes(
                "create", self.settings.topic_name(emission.topic), key=row["key"], tenant=emission.tenant,
                event_id=row["event_id"], session_id=emission.event.get("session_id"),
            ) | {"soma.outbox.dedupe_key": emission.dedupe_key})
        return span, row

    def _insert(self, session: Session, values: list[dict[str, Any]]) -> list[Emitted]:
        if not values:
            return []
        wanted = list(dict.fromkeys((v["tenant_id"], v["dedupe_key"]) for v in values))
        first: dict[tuple[str, str], dict[str, Any]] = {}
        for v in values:
            first.setdefault((v["tenant_id"], v["dedupe_key"]), v)
        unique = [first[pair] for pair in wanted]
        created: dict[tuple[str, str], OutboxEvent] = {}
        try:
            # One statement (executemany, batched by SQLAlchemy into multi-row INSERTs, compiled once).
            for row in session.scalars(INSERT, unique):
                created[(row.tenant_id, row.dedupe_key)] = row
            existing: dict[tuple[str, str], OutboxEvent] = {}
            missing = [pair for pair in wanted if pair not in created]
            for start in range(0, len(missing), ROWS_PER_STATEMENT):
                chunk_pairs = missing[start : start + ROWS_PER_STATEMENT]
                query = select(OutboxEvent).where(
                    tuple_(OutboxEvent.tenant_id, OutboxEvent.dedupe_key).in_(chunk_pairs)
                )
                for row in session.scalars(query):
                    existing[(row.tenant_id, row.dedupe_key)] = row
        except SQLAlchemyError as exc:
            raise EmitError(f"outbox insert failed: {first_line(exc)}") from exc
        result: list[Emitted] = []
        seen: set[tuple[str, str]] = set()
        for v in values:
            pair = (v["tenant_id"], v["dedupe_key"])
            if pair in created:
                result.append(Emitted(created[pair], created=pair not in seen))
            elif pair in existing:
                result.append(Emitted(existing[pair], created=False))
            else:  # committed by another transaction after this one's snapshot (REPEATABLE READ or stricter)
                raise EmitError(
                    f"outbox: tenant {pair[0]!r}, dedupe key {pair[1]!r} was emitted by a concurrent transaction"
                    " this one cannot see yet; retry the transaction"
                )
            seen.add(pair)
        return result
