"""The admin API's dead-letter routes (mounted by outbox.admin.api under the same tokens and scopes).

    GET  /admin/dlq                  dead letters, filtered (a scoped token sees only its tenants)
    GET  /admin/dlq/{id}             one dead letter, decoded (id: dlq:<partition>:<offset>)
    POST /admin/dlq/redrive          redrive dead letters by id (one tenant, all checked first)
    POST /admin/dlq/redrive/filter   redrive one tenant's dead letters by filter (dry_run to preview)
"""

from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from outbox.admin.dlq import DeadLetters, RedriveResult
from outbox.admin.models import ErrorOut, Tenant, Timestamp
from soma.dlq.letters import detail, summary
from soma.dlq.select import DEFAULT_LIMIT, ID_PATTERN, MAX_LIMIT, MAX_REDRIVE, MAX_TEXT, LetterId, build_filter

TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, pattern=TEXT_PATTERN)]
LetterIdText = Annotated[str, Field(pattern=ID_PATTERN, description="dlq:<partition>:<offset>")]


class DeadLetterOut(BaseModel):
    id: str = Field(description="dlq:<partition>:<offset>")
    event_id: str
    tenant: str
    dead_lettered_at: str | None
    stream: str
    source_topic: str
    source_partition: int
    source_offset: int
    error_type: str
    error: str
    truncated: bool


class DlqPageOut(BaseModel):
    items: list[DeadLetterOut]
    scanned: int = Field(description="dlq records read to answer.")
    complete: bool = Field(description="Every partition was read to its end.")
    next_after: str | None = Field(description="Pass as `after` to continue; null when complete.")
    topic_exists: bool


class OriginalOut(BaseModel):
    size: int | None
    value: dict[str, Any] | None = Field(None, description="Decoded with the source topic's schema.")
    not_decodable: str | None = Field(None, description="Why the original value does not decode.")
    preview_hex: str | None = None
    preview_base64: str | None = None
    preview_complete: bool | None = None


class DeadLetterDetailOut(DeadLetterOut):
    occurred_at: str | None
    original_key: str | None = Field(description="Text, or base64:<...> when not printable UTF-8.")
    original_headers: dict[str, str | None]
    original: OriginalOut


class RedriveByIdsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[LetterIdText] = Field(min_length=1, max_length=MAX_REDRIVE, description="Dead-letter ids.")
    tenant: Tenant | None = Field(None, description="Their tenant; default: the one tenant all ids belong to.")
    dry_run: bool = Field(False, strict=True, description="Report what would be redriven; send nothing.")


class RedriveByFilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: Tenant
    source_topic: str | None = Field(None, description="Only dead letters from this catalog topic.")
    stream: Text | None = None
    error_type: Text | None = None
    reason: Text | None = Field(None, description="Case-insensitive substring of the error.")
    since: Timestamp | None = Field(None, description="Dead-lettered at or after (ISO-8601; no zone = UTC).")
    until: Timestamp | None = Field(None, description="Dead-lettered before (ISO-8601; no zone = UTC).")
    dry_run: bool = Field(False, strict=True, description="Report what would be redriven; send nothing.")


class RedrivenOut(BaseModel):
    id: str
    topic: str
    partition: int
    offset: int


class RedriveOut(BaseModel):
    tenant: str
    dry_run: bool
    count: int = Field(description="Dead letters chosen.")
    by_topic: dict[str, int]
    ids: list[str] = Field(description="The first chosen ids.")
    redriven: list[RedrivenOut] = Field(description="The first acknowledged records and where they landed.")
    failed: dict[str, str] = Field(description="id -> why the broker did not acknowledge it.")
    outcome: str = Field(description="ok, partial, failed, nothing_matched or dry_run.")
    audit_event_id: str | None
    selection: dict[str, Any]


def _redrive_out(result: RedriveResult) -> RedriveOut:
    return RedriveOut.model_validate(asdict(result))


def dlq_router(
    letters: DeadLetters, caller: Any, topic_type: Any, errors: dict[int | str, dict[str, Any]]
) -> APIRouter:
    """The routes over `letters`; `caller` is the app's principal dependency (an Annotated type)."""
    router = APIRouter(prefix="/admin/dlq", tags=["dlq"], responses=errors)
    known = letters.topics
    not_found: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorOut, "description": "No dead letter at an id (all-tenant tokens only)."},
    }

    async def filter_query(  # async: no I/O, so no thread hop; checked after every field is validated
        tenant: Annotated[Tenant | None, Query()] = None,
        source_topic: topic_type | None = None,
        stream: Annotated[Text | None, Query()] = None,
        error_type: Annotated[Text | None, Query()] = None,
        reason: Annotated[Text | None, Query(description="Case-insensitive substring of the error.")] = None,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
    ) -> Callable[[], Any]:
        return lambda: build_filter(
            tenant=tenant, source_topic=source_topic, stream=stream, error_type=error_type, reason=reason,
            since=since, until=until, known_topics=known,
        )

    Filter = Annotated[Callable[[], Any], Depends(filter_query)]

    @router.get("", response_model=DlqPageOut, summary="List dead letters (oldest first), filtered")
    def list_letters(
        principal: caller, checked: Filter,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        after: Annotated[str | None, Query(pattern=ID_PATTERN, description="next_after of the last page.")] = None,
    ) -> DlqPageOut:
        start = LetterId.parse(after, "after") if after is not None else None
        page = letters.scan(principal, checked(), limit=limit, after=start)
        return DlqPageOut(
            items=[DeadLetterOut.model_validate(summary(x)) for x in page.items], scanned=page.scanned,
            complete=page.complete, next_after=page.next_after, topic_exists=page.topic_exists,
        )

    @router.get("/{letter_id}", response_model=DeadLetterDetailOut, summary="One dead letter, decoded",
                responses=not_found)
    def show_letter(principal: caller, letter_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> DeadLetterDetailOut:
        letter = letters.show(principal, LetterId.parse(letter_id))
        return DeadLetterDetailOut.model_validate(detail(letters.codec, letter))

    @router.post("/redrive", response_model=RedriveOut, summary="Redrive dead letters by id (one tenant)",
                 responses=not_found)
    def redrive_ids(principal: caller, body: RedriveByIdsIn) -> RedriveOut:
        ids = list(dict.fromkeys(LetterId.parse(i, "ids") for i in body.ids))
        return _redrive_out(letters.redrive_ids(principal, ids, tenant=body.tenant, dry_run=body.dry_run))

    @router.post("/redrive/filter", response_model=RedriveOut, summary="Redrive one tenant's dead letters by filter")
    def redrive_filter(principal: caller, body: RedriveByFilterIn) -> RedriveOut:
        flt = build_filter(
            tenant=body.tenant, source_topic=body.source_topic, stream=body.stream, error_type=body.error_type,
            reason=body.reason, since=body.since, until=body.until, known_topics=known,
        )
        return _redrive_out(letters.redrive_filter(principal, flt, dry_run=body.dry_run))

    return router
