"""Dead letters for operators: list, show and redrive within a caller's tenant scope; redrives audited.

Reading and sending are `soma.dlq`'s (Kafka only); this layer adds who may see what and the
audit trail. A tenant-scoped caller sees only its tenants' dead letters: asking for another
tenant, or for an id that is another tenant's or does not exist, is the same `AccessDenied`.

A redrive acts on one tenant's dead letters (by ids, or by a filter naming the tenant), at most
MAX_REDRIVE at once, all checked before anything is sent. The database transaction of the
audit opens first (an unreachable database stops the redrive before anything is sent), the
records are sent and acknowledged, then the `admin_audit` row and the AdminAudit event
(action ``dlq.redrive``, outcome ``ok``, ``partial`` or ``failed``, the ids and where each
landed) commit together. A dry run reads only and audits nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from outbox.admin.audit import AuditEntry, new_event_id, record
from outbox.admin.auth import FORBIDDEN, Principal
from outbox.admin.queries import admin_db_errors
from outbox.errors import AccessDenied
from soma.contracts.catalog import Catalog
from soma.contracts.codec import Codec
from soma.dlq.errors import DeadLetterNotFound, InvalidDlqRequest, ScanIncomplete, SelectionTooLarge
from soma.dlq.letters import DeadLetter
from soma.dlq.reader import DlqReader, Page
from soma.dlq.redrive import Redriven, Redriver
from soma.dlq.select import MAX_REDRIVE, DlqFilter, LetterId
from soma.settings import Settings

log = logging.getLogger("outbox.dlq")

ACTION = "dlq.redrive"
AUDITED = 100  # ids (and landing positions) the audit details list
SAMPLE = 20  # redriven records a result shows


@dataclass(frozen=True)
class RedriveResult:
    tenant: str
    dry_run: bool
    count: int  # dead letters chosen
    by_topic: dict[str, int]
    ids: list[str]  # the first SAMPLE chosen
    redriven: list[dict[str, Any]]  # the first SAMPLE acknowledged: id, topic, partition, offset
    failed: dict[str, str]  # id -> why it was not acknowledged
    outcome: str  # ok, partial, failed, dry_run
    audit_event_id: str | None
    selection: dict[str, Any] = field(default_factory=dict)


def _landed(done: Sequence[Redriven]) -> list[dict[str, Any]]:
    return [{"id": str(r.id), "topic": r.topic, "partition": r.partition, "offset": r.offset} for r in done]


class DeadLetters:
    """One implementation for the CLI and the HTTP API."""

    def __init__(
        self, engine: Engine, settings: Settings, catalog: Catalog, codec: Codec,
        *, reader: DlqReader | None = None, redriver: Redriver | None = None,
    ) -> None:
        self.engine, self.settings, self.catalog, self.codec = engine, settings, catalog, codec
        self.reader = reader if reader is not None else DlqReader(settings, codec)
        self.redriver = redriver if redriver is not None else Redriver(settings)
        self.topics = frozenset(catalog.topics)

    def close(self) -> None:
        self.reader.close()
        self.redriver.close()

    # --- reading -----------------------------------------------------------------------------
    def scan(self, principal: Principal, flt: DlqFilter, *, limit: int, after: LetterId | None = None) -> Page:
        """A page of the dead letters of `flt` the caller may see."""
        for tenant in sorted(flt.tenants or ()):
            principal.require(tenant)
        if not principal.all_tenants:
            flt = flt.scoped(principal.tenants)
        return self.reader.scan(flt, limit=limit, after=after)

    def show(self, principal: Principal, letter_id: LetterId) -> DeadLetter:
        try:
            letter = self.reader.get(letter_id)
        except DeadLetterNotFound:
            if not principal.all_tenants:
                raise AccessDenied(FORBIDDEN) from None
            raise
        principal.require(letter.tenant)
        return letter

    # --- redrive -----------------------------------------------------------------------------
    def redrive_ids(
        self, principal: Principal, ids: Sequence[LetterId], *, tenant: str | None = None, dry_run: bool = False
    ) -> RedriveResult:
        """Redrive these dead letters: all of one tenant (`tenant`, when given) and in the caller's scope."""
        if tenant is not None:
            principal.require(tenant)
        found = self.reader.get_many(ids)
        missing = [i for i in ids if i not in found]
        if not principal.all_tenants and (missing or any(not principal.can_access(x.tenant) for x in found.values())):
            raise AccessDenied(FORBIDDEN)
        if missing:
            shown = ", ".join(str(i) for i in missing[:10])
            raise DeadLetterNotFound(f"ids: {len(missing)} unknown dead letter(s): {shown}")
        tenants = {letter.tenant for letter in found.values()}
        if tenant is not None and tenants - {tenant}:
            raise InvalidDlqRequest("ids", f"{sum(x.tenant != tenant for x in found.values())} id(s) belong to "
                                           "another tenant")
        if len(tenants) > 1:
            raise InvalidDlqRequest("ids", f"the ids span {len(tenants)} tenants; redrive one tenant at a time")
        letters = [found[i] for i in ids]
        return self._run(principal, letters[0].tenant, letters, {"mode": "ids", "requested": len(ids)}, dry_run)

    def redrive_filter(self, principal: Principal, flt: DlqFilter, *, dry_run: bool = False) -> RedriveResult:
        """Redrive every dead letter of `flt`, which names exactly one tenant."""
        if flt.tenants is None or len(flt.tenants) != 1:
            raise InvalidDlqRequest("tenant", "a redrive by filter names one tenant")
        (tenant,) = flt.tenants
        principal.require(tenant)
        page = self.reader.scan(flt, limit=MAX_REDRIVE + 1)
        if len(page.items) > MAX_REDRIVE:
            raise SelectionTooLarge(
                f"the filter matches more than {MAX_REDRIVE} dead letters: narrow it (source_topic, stream, "
                "error_type, reason, since, until) or redrive by ids"
            )
        if not page.complete:
            raise ScanIncomplete(
                f"the dlq topic was not read to its end within {self.reader.deadline_s:g}s, so the filter's "
                "matches are not known: narrow it with since/until, or redrive by ids"
            )
        return self._run(principal, tenant, page.items, {"mode": "filter", "filter": flt.describe()}, dry_run)

    def _run(
        self, principal: Principal, tenant: str, letters: list[DeadLetter], selection: dict[str, Any], dry_run: bool
    ) -> RedriveResult:
        for letter in letters:
            problem = letter.not_redrivable(self.topics)
            if problem is not None:
                raise InvalidDlqRequest("ids", f"{letter.id} cannot be redriven: {problem}; nothing was sent")
        by_topic = dict(sorted(Counter(letter.source_topic for letter in letters).items()))
        ids = [str(letter.id) for letter in letters]
        if dry_run:
            return RedriveResult(tenant, True, len(letters), by_topic, ids[:SAMPLE], [], {}, "dry_run", None, selection)
        event_id = new_event_id()
        done: list[Redriven] = []
        try:
            with admin_db_errors(self.settings), self.engine.begin() as conn:  # connected before anything is sent
                done, failed = self.redriver.send(letters) if letters else ([], {})
                outcome = ("ok" if letters else "nothing_matched") if not failed else ("partial" if done else "failed")
                details = {
                    **selection, "count": len(letters), "by_topic": by_topic, "ids": ids[:AUDITED],
                    "ids_truncated": len(ids) > AUDITED, "redriven": _landed(done[:AUDITED]),
                    "failed": {str(i): reason for i, reason in list(failed.items())[:AUDITED]},
                }
                entry = AuditEntry(principal.actor, ACTION, tenant, outcome, details, event_id=event_id)
                record(conn, entry, catalog=self.catalog, codec=self.codec, settings=self.settings)
        except Exception:
            if done:  # sent and acknowledged, but the audit did not commit: say so where operators look
                log.error("redrive %s by %s: %d record(s) sent but NOT audited (the audit failed): %s", event_id,
                          principal.actor, len(done), ", ".join(str(r.id) for r in done[:AUDITED]))
            raise
        log.info("redrive %s by %s: %d of %d dead letter(s) of tenant %s", event_id, principal.actor, len(done),
                 len(letters), tenant)
        return RedriveResult(
            tenant, False, len(letters), by_topic, ids[:SAMPLE], _landed(done[:SAMPLE]),
            {str(i): reason for i, reason in failed.items()}, outcome, event_id, selection,
        )
