"""Request and response models of the admin HTTP API (they are its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from outbox.filters import MAX_ID, MAX_TENANT_LENGTH, TENANT_PATTERN

Status = Literal["pending", "sent", "failed", "dead"]
Tenant = Annotated[
    str, Field(min_length=1, max_length=MAX_TENANT_LENGTH, pattern=TENANT_PATTERN, description="Tenant id.")
]
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
MAX_IDS_PER_REQUEST = 10_000


class OutboxRowOut(BaseModel):
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


class PageOut(BaseModel):
    tenant: str
    items: list[OutboxRowOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class StatsOut(BaseModel):
    tenant: str
    total: int
    by_status: dict[str, int]
    by_topic: dict[str, dict[str, int]] = Field(description="topic -> status -> rows")
    oldest_waiting_at: datetime | None = Field(description="created_at of the oldest pending/failed row.")
    max_attempts: int
    filter: dict[str, str]


class ReplayByIdsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[RowId] = Field(min_length=1, max_length=MAX_IDS_PER_REQUEST, description="Outbox row ids.")
    tenant: Tenant | None = Field(None, description="The rows' tenant; default: the one tenant all ids belong to.")
    dry_run: bool = Field(False, description="Report what would be replayed; write nothing.")


class ReplayByFilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: Tenant
    status: Status = Field(description="Rows with this status are replayed (required).")
    topic: str | None = Field(None, description="Only this catalog topic (the app narrows it to the catalog's).")
    since: datetime | None = Field(None, description="created_at >= since (ISO-8601; no zone = UTC).")
    until: datetime | None = Field(None, description="created_at < until (ISO-8601; no zone = UTC).")
    dry_run: bool = Field(False, description="Report what would be replayed; write nothing.")


class ReplayPair(BaseModel):
    original_id: int
    replay_id: int | None


class ReplayOut(BaseModel):
    tenant: str
    dry_run: bool
    count: int = Field(description="Rows replayed (or that would be, on a dry run).")
    by_topic: dict[str, int]
    sample: list[ReplayPair] = Field(description="The first (original, replay) id pairs.")
    audit_event_id: str | None = Field(description="event_id of the audit row and AdminAudit event; null on a dry run.")
    selection: dict[str, Any]


class ErrorOut(BaseModel):
    detail: str


class ValidationItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationOut(BaseModel):
    detail: list[ValidationItem]


class HealthOut(BaseModel):
    status: Literal["ok"]
