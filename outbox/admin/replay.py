"""Replay: copy chosen rows of one tenant into new pending outbox rows, audited, all or nothing.

A replay row keeps the original's tenant, topic, key, payload, event type, event id and
headers (so the ``dedupe-key`` header stays the original's and idempotent consumers stay
correct), adds ``replay-of: <original row id>``, and gets the row dedupe key
``replay:<audit event id>:<original id>``. The relay publishes it like any other row.
The copies, the `admin_audit` row and the AdminAudit event are one transaction.

A dry run only reads: it reports what would be copied and writes nothing, not even an
audit row (nothing happened to audit).

A replay whose chosen rows include one whose record (value + key + headers, with the
``replay-of`` header it would get) exceeds its topic's current limit (topics.yaml
``max_message_bytes``, else SOMA_KAFKA_MAX_MESSAGE_BYTES) is refused as a whole, dry run or
not: nothing is copied, so a request is never half-published; the one-line error names the
first such row (id, topic, size, limit) and how many others there are. Leave those rows out
(replay by ids, or narrow the filter) to replay the rest.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, String, Text, cast, func, insert, literal, select, text
from sqlalchemy.dialects.postgresql import JSONB

from outbox.admin.audit import AuditEntry, new_event_id, record
from outbox.admin.auth import Principal, authorize_ids
from outbox.admin.filters import OutboxFilter, check_ids, check_tenant
from outbox.admin.queries import admin_db_errors, matching_rows, rows_by_id
from outbox.errors import InvalidFilter, OutboxError, ReplayRecordTooLarge, ReplayTooLarge
from outbox.models import OutboxEvent
from soma.contracts.catalog import Catalog
from soma.contracts.codec import Codec
from soma.contracts.events import HEADER_REPLAY_OF
from soma.contracts.limits import size_limit
from soma.settings import Settings, env_name

log = logging.getLogger("outbox.replay")

ACTION = "outbox.replay"
CHUNK = 1000  # rows copied per statement (and per progress step)
SAMPLE = 20  # (original, replay) id pairs a result shows
AUDITED_IDS = 100  # original ids the audit details list

Progress = Callable[[int, int], None]

# What each row's record weighs as the relay would publish it (before its replay-of header).
RECORD_SIZES = text(
    """
SELECT id, topic, octet_length(payload) + octet_length(key)
       + COALESCE((SELECT sum(octet_length(h.k) + octet_length(h.v)) FROM jsonb_each_text(headers) AS h(k, v)), 0)
  FROM outbox_events
 WHERE id = ANY(CAST(:ids AS bigint[]))
 ORDER BY id
"""
)


@dataclass(frozen=True)
class ReplayResult:
    tenant: str
    dry_run: bool
    count: int
    by_topic: dict[str, int]
    sample: list[dict[str, int | None]]  # {"original_id": ..., "replay_id": ... (None on a dry run)}
    audit_event_id: str | None
    selection: dict[str, Any] = field(default_factory=dict)


def _copy(conn: Connection, tenant: str, ids: Sequence[int], audit_event_id: str) -> list[tuple[int, int]]:
    """INSERT ... SELECT the replay copies of `ids` (of `tenant` only); (original id, replay id) pairs."""
    original_id = cast(OutboxEvent.id, Text)
    source = (
        select(
            OutboxEvent.tenant_id,
            (literal(f"replay:{audit_event_id}:", String) + original_id).label("dedupe_key"),
            OutboxEvent.topic,
            OutboxEvent.key,
            OutboxEvent.headers.op("||", return_type=JSONB)(
                func.jsonb_build_object(cast(literal(HEADER_REPLAY_OF, String), Text), original_id)
            ).label("headers"),
            OutboxEvent.payload,
            OutboxEvent.event_type,
            OutboxEvent.event_id,
            literal("pending", String).label("status"),
        )
        .where(OutboxEvent.tenant_id == tenant, OutboxEvent.id.in_(list(ids)))
        .order_by(OutboxEvent.id)
    )
    columns = ["tenant_id", "dedupe_key", "topic", "key", "headers", "payload", "event_type", "event_id", "status"]
    statement = (
        insert(OutboxEvent)
        .from_select(columns, source)
        .returning(OutboxEvent.id, OutboxEvent.headers[HEADER_REPLAY_OF].astext)
    )
    return sorted((int(original), int(replay_id)) for replay_id, original in conn.execute(statement))


class Replayer:
    """Replays for the CLI and the HTTP API: one implementation, one transaction per replay."""

    def __init__(self, engine: Engine, settings: Settings, catalog: Catalog, codec: Codec) -> None:
        self.engine, self.settings, self.catalog, self.codec = engine, settings, catalog, codec

    def by_ids(
        self,
        principal: Principal,
        ids: Sequence[int],
        *,
        tenant: str | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> ReplayResult:
        """Replay these rows. All must be one tenant's (`tenant`, when given) and in the caller's scope."""
        wanted = check_ids(ids, self.settings.admin.replay_max_rows)
        if tenant is not None:
            check_tenant(tenant)
        with admin_db_errors(self.settings), self.engine.begin() as conn:
            found = rows_by_id(conn, wanted)
            target = authorize_ids(principal, wanted, {i: t for i, (t, _) in found.items()}, tenant)
            chosen = [(i, found[i][1]) for i in sorted(wanted)]
            selection = {"mode": "ids", "requested": len(wanted)}
            return self._run(conn, principal, target, chosen, selection, dry_run, progress)

    def by_filter(
        self, principal: Principal, flt: OutboxFilter, *, dry_run: bool = False, progress: Progress | None = None
    ) -> ReplayResult:
        """Replay every row of `flt` (a status is required, so a replay never means "everything")."""
        principal.require(flt.tenant)
        if flt.status is None:
            raise InvalidFilter("status", "required to replay by filter (pending, sent, failed or dead)")
        limit = self.settings.admin.replay_max_rows
        with admin_db_errors(self.settings), self.engine.begin() as conn:
            chosen = matching_rows(conn, flt, limit=limit + 1)
            if len(chosen) > limit:
                raise ReplayTooLarge(
                    f"the filter matches more than {limit} rows ({env_name('admin_replay_max_rows')}): "
                    "narrow it with topic, since or until"
                )
            selection = {"mode": "filter", "filter": flt.describe()}
            return self._run(conn, principal, flt.tenant, chosen, selection, dry_run, progress)

    def _refuse_oversized(self, conn: Connection, ids: Sequence[int]) -> None:
        """Raise `ReplayRecordTooLarge` when any chosen row's replayed record would exceed its topic's limit."""
        over: list[tuple[int, str, int, int]] = []
        for start in range(0, len(ids), CHUNK):
            for row_id, topic, size in conn.execute(RECORD_SIZES, {"ids": list(ids[start : start + CHUNK])}):
                total = int(size) + len(HEADER_REPLAY_OF) + len(str(row_id))
                limit = size_limit(self.catalog.topics.get(topic), self.settings)
                if total > limit:
                    over.append((int(row_id), str(topic), total, limit))
        if over:
            row_id, topic, size, limit = over[0]
            others = f" ({len(over) - 1} other chosen row(s) too)" if len(over) > 1 else ""
            raise ReplayRecordTooLarge(
                f"row {row_id} ({topic}): record of {size} bytes exceeds the topic's limit of {limit} bytes"
                f"{others}; nothing replayed: leave such rows out"
            )

    def _run(
        self,
        conn: Connection,
        principal: Principal,
        tenant: str,
        chosen: list[tuple[int, str]],
        selection: dict[str, Any],
        dry_run: bool,
        progress: Progress | None,
    ) -> ReplayResult:
        by_topic = dict(sorted(Counter(topic for _, topic in chosen).items()))
        self._refuse_oversized(conn, [i for i, _ in chosen])
        if dry_run:
            sample: list[dict[str, int | None]] = [{"original_id": i, "replay_id": None} for i, _ in chosen[:SAMPLE]]
            return ReplayResult(tenant, True, len(chosen), by_topic, sample, None, selection)
        event_id = new_event_id()
        total = len(chosen)
        pairs: list[tuple[int, int]] = []
        if progress is not None:
            progress(0, total)
        for start in range(0, total, CHUNK):
            pairs += _copy(conn, tenant, [i for i, _ in chosen[start : start + CHUNK]], event_id)
            if progress is not None:
                progress(len(pairs), total)
        if len(pairs) != total:  # a row vanished between choosing and copying: roll everything back
            raise OutboxError(
                f"{total - len(pairs)} chosen row(s) disappeared during the replay (pruned: they were older than"
                " the retention, SOMA_OUTBOX_RETENTION); nothing replayed"
            )
        details = {
            **selection,
            "count": total,
            "by_topic": by_topic,
            "original_ids": [i for i, _ in chosen[:AUDITED_IDS]],
            "original_ids_truncated": total > AUDITED_IDS,
            "replay_id_range": [min(r for _, r in pairs), max(r for _, r in pairs)] if pairs else [],
        }
        entry = AuditEntry(
            actor=principal.actor, action=ACTION, tenant=tenant, outcome="ok" if total else "nothing_matched",
            details=details, event_id=event_id,
        )
        record(conn, entry, catalog=self.catalog, codec=self.codec, settings=self.settings)
        log.info("replay %s by %s: %d row(s) of tenant %s", event_id, principal.actor, total, tenant)
        sample = [{"original_id": o, "replay_id": r} for o, r in pairs[:SAMPLE]]
        return ReplayResult(tenant, False, total, by_topic, sample, event_id, selection)
