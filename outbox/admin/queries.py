"""Read-only queries over one tenant's outbox rows: pages, statistics, and the rows a replay picks.

Shared by `soma outbox list|stats|replay` and the admin HTTP API. Every query is built
with SQLAlchemy expressions and bound parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Connection, func, select
from sqlalchemy.exc import ProgrammingError

from outbox.admin.filters import OutboxFilter, encode_cursor
from outbox.errors import OutboxNotMigrated
from outbox.models import STATUSES, OutboxEvent, Status
from soma.clients import database_errors
from soma.settings import Settings

_UNDEFINED_TABLE = "42P01"
_WAITING = ("pending", "failed")


@contextmanager
def admin_db_errors(settings: Settings) -> Iterator[None]:
    """Unreachable database -> `InfrastructureUnavailable`; missing tables -> `OutboxNotMigrated`."""
    with database_errors(settings):
        try:
            yield
        except ProgrammingError as exc:
            if getattr(exc.orig, "sqlstate", None) == _UNDEFINED_TABLE:
                raise OutboxNotMigrated(
                    "the outbox tables do not exist in this database/schema: run `soma db upgrade`"
                ) from exc
            raise


class OutboxRow(BaseModel):
    """One outbox row as an admin sees it (the payload only by size); also the API's row schema."""

    model_config = ConfigDict(frozen=True)

    id: int
    tenant_id: str
    dedupe_key: str
    topic: str
    key: str
    headers: dict[str, str]
    event_type: str
    event_id: str
    status: Status
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    partition: int | None
    offset: int | None
    payload_size: int = Field(description="Bytes of the encoded Avro value.")


@dataclass(frozen=True)
class Page:
    items: list[OutboxRow]
    next_cursor: str | None


@dataclass(frozen=True)
class Stats:
    tenant: str
    total: int
    by_status: dict[str, int]
    by_topic: dict[str, dict[str, int]]
    oldest_waiting_at: datetime | None  # oldest pending/failed row: how far behind the relay is
    max_attempts: int
    filter: dict[str, str] = field(default_factory=dict)


def conditions(flt: OutboxFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a filter (always scoped to its tenant)."""
    where: list[ColumnElement[bool]] = [OutboxEvent.tenant_id == flt.tenant]
    if flt.status is not None:
        where.append(OutboxEvent.status == flt.status)
    if flt.topic is not None:
        where.append(OutboxEvent.topic == flt.topic)
    if flt.since is not None:
        where.append(OutboxEvent.created_at >= flt.since)
    if flt.until is not None:
        where.append(OutboxEvent.created_at < flt.until)
    return where


_ROW_COLUMNS = (
    OutboxEvent.id, OutboxEvent.tenant_id, OutboxEvent.dedupe_key, OutboxEvent.topic, OutboxEvent.key,
    OutboxEvent.headers, OutboxEvent.event_type, OutboxEvent.event_id, OutboxEvent.status,
    OutboxEvent.attempts, OutboxEvent.next_attempt_at, OutboxEvent.last_error, OutboxEvent.created_at,
    OutboxEvent.sent_at, OutboxEvent.partition, OutboxEvent.offset,
    func.octet_length(OutboxEvent.payload).label("payload_size"),
)


def list_events(conn: Connection, flt: OutboxFilter, *, after_id: int = 0, limit: int = 100) -> Page:
    """Up to `limit` rows with id > `after_id`, by id; `next_cursor` is set when more follow."""
    query = (
        select(*_ROW_COLUMNS)
        .where(*conditions(flt), OutboxEvent.id > after_id)
        .order_by(OutboxEvent.id)
        .limit(limit + 1)
    )
    rows = [OutboxRow(**row._asdict()) for row in conn.execute(query)]
    more = len(rows) > limit
    items = rows[:limit]
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if more and items else None)


def stats(conn: Connection, flt: OutboxFilter) -> Stats:
    """Counts by status and by topic, the oldest waiting row and the most attempts, for one filter."""
    query = (
        select(
            OutboxEvent.topic,
            OutboxEvent.status,
            func.count().label("n"),
            func.min(OutboxEvent.created_at).filter(OutboxEvent.status.in_(_WAITING)).label("oldest"),
            func.max(OutboxEvent.attempts).label("attempts"),
        )
        .where(*conditions(flt))
        .group_by(OutboxEvent.topic, OutboxEvent.status)
    )
    by_status = dict.fromkeys(STATUSES, 0)
    by_topic: dict[str, dict[str, int]] = {}
    oldest: datetime | None = None
    max_attempts = 0
    for topic, status, count, first, attempts in conn.execute(query):
        by_status[status] = by_status.get(status, 0) + count
        by_topic.setdefault(topic, {})[status] = count
        if first is not None and (oldest is None or first < oldest):
            oldest = first
        max_attempts = max(max_attempts, attempts or 0)
    return Stats(
        tenant=flt.tenant,
        total=sum(by_status.values()),
        by_status=by_status,
        by_topic=dict(sorted(by_topic.items())),
        oldest_waiting_at=oldest,
        max_attempts=max_attempts,
        filter=flt.describe(),
    )


def matching_rows(conn: Connection, flt: OutboxFilter, *, limit: int) -> list[tuple[int, str]]:
    """(id, topic) of up to `limit` rows matching `flt`, by id."""
    query = select(OutboxEvent.id, OutboxEvent.topic).where(*conditions(flt)).order_by(OutboxEvent.id).limit(limit)
    return [(row.id, row.topic) for row in conn.execute(query)]


def rows_by_id(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """id -> (tenant, topic) for those of `ids` that exist (any tenant: callers check scope)."""
    found: dict[int, tuple[str, str]] = {}
    for start in range(0, len(ids), 1000):
        chunk = list(ids[start : start + 1000])
        query = select(OutboxEvent.id, OutboxEvent.tenant_id, OutboxEvent.topic).where(OutboxEvent.id.in_(chunk))
        found.update({row.id: (row.tenant_id, row.topic) for row in conn.execute(query)})
    return found


def row_view(row: OutboxRow) -> dict[str, Any]:
    """A row as JSON-ready values (CLI --json)."""
    view: dict[str, Any] = row.model_dump()
    for name in ("next_attempt_at", "created_at", "sent_at"):
        value = view[name]
        view[name] = value.isoformat() if value is not None else None
    return view
