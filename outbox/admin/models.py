"""Request and response models of the admin HTTP API (they are its OpenAPI schema)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from outbox.admin.filters import MAX_TENANT_LENGTH
from outbox.admin.queries import OutboxRow
from outbox.models import Status
from soma.contracts.tenants import TENANT_PATTERN

Tenant = Annotated[
    str, Field(min_length=1, max_length=MAX_TENANT_LENGTH, pattern=TENANT_PATTERN, description="Tenant id.")
]
# Row ids over HTTP stay within JSON's exact integers (2**53 - 1), so the schema's bound is exact too.
MAX_JSON_ID = 2**53 - 1


def _json_integer(value: Any) -> Any:
    """A JSON integer (7 or 7.0, as JSON Schema has it), not a string or a boolean."""
    if isinstance(value, str | bool):
        raise ValueError("expected an integer")
    return value


RowId = Annotated[int, Field(ge=1, le=MAX_JSON_ID), BeforeValidator(_json_integer)]
MAX_IDS_PER_REQUEST = 10_000
_NUMBER = re.compile(r"\s*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\s*")


def _iso_8601_only(value: Any) -> Any:
    """Timestamps are ISO-8601 text: a bare number (pydantic would read Unix seconds) is refused."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO-8601 timestamp, e.g. 2026-11-22T09:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_8601_only)]


# A row in a page: the queries' own row model, under the schema name the API has always had
# (no docstring: it would become the schema's description).
class OutboxRowOut(OutboxRow):
    pass


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
    dry_run: bool = Field(False, strict=True, description="Report what would be replayed; write nothing.")


class ReplayByFilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: Tenant
    status: Status = Field(description="Rows with this status are replayed (required).")
    topic: str | None = Field(None, description="Only this catalog topic (the app narrows it to the catalog's).")
    since: Timestamp | None = Field(None, description="created_at >= since (ISO-8601; no zone = UTC).")
    until: Timestamp | None = Field(None, description="created_at < until (ISO-8601; no zone = UTC).")
    dry_run: bool = Field(False, strict=True, description="Report what would be replayed; write nothing.")


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
