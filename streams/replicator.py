"""replicator: memory.writes -> the PostgreSQL `memory_replica` table, idempotent by event id.

Run: `faust -A streams.replicator worker`. Records are taken in batches and applied in one
statement (`streams.storage.replica.apply_writes`: the end state of applying them in order).
While PostgreSQL is unreachable the agent retries the same batch with exponential backoff and
does not move on, so its offsets are not committed; a record that fails for its own reasons
(invalid payload, `payload_json` too large or too deeply nested, a value the table refuses:
SQLSTATE class 22 or 23) goes to the DLQ: a refused batch is applied again record by record to
find it. Every other database error (connection lost, read-only standby, missing grant,
serialization failure) is retried with backoff, never dead-lettered. Reports replica lag
(now - occurred_at of the last applied write) and the DLQ count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from opentelemetry.trace import SpanKind
from sqlalchemy.exc import DBAPIError

from soma.backoff import Backoff
from soma.clients import database_engine
from soma.errors import first_line
from soma.observability import telemetry
from streams.app import StreamApp
from streams.errors import RefusedWrite
from streams.runtime.faults import is_infrastructure
from streams.runtime.records import Incoming
from streams.storage.replica import apply_write, apply_writes, row_for
from streams.storage.sqlstate import sqlstate_of, verdict

stream = StreamApp("replicator", ["memory.writes"], needs=("postgresql",), tables=("memory_replica",))
app = stream.app
engine = database_engine(stream.settings)
log = logging.getLogger("streams.replicator")
BATCH = 500  # most writes per statement
BATCH_WAIT_S = 0.02  # longest wait to fill a batch (opened by its first write; fewer, larger statements under load)
DB_ATTRIBUTES = {
    "db.system.name": "postgresql", "db.collection.name": "memory_replica", "db.operation.name": "INSERT",
    "db.namespace": str(engine.url.database or ""),
}
T = TypeVar("T")


async def _until_database_answers(write: Callable[[], T], tenant: str | None) -> T:
    """Run `write` in a thread, retrying with backoff while the database cannot take it.

    Classified by SQLSTATE (`streams.storage.sqlstate`): a data or constraint error is the record's
    own fault, `RefusedWrite` (dead-lettered by the caller); everything else (connection lost,
    read-only standby, missing grant, serialization failure, ...) is retried, never dead-lettered.
    """
    backoff = Backoff(stream.settings.streams.replicator_retry_base_s, stream.settings.streams.replicator_retry_max_s)
    while True:
        attributes = DB_ATTRIBUTES | {"soma.tenant": tenant or "*"} if stream.tracer else None
        try:
            with telemetry.current_span(stream.tracer, "upsert memory_replica", kind=SpanKind.CLIENT,
                                        attributes=attributes):
                return await asyncio.to_thread(write)
        except DBAPIError as exc:
            code = sqlstate_of(exc)
            if verdict(exc) == "record":
                why = f"PostgreSQL refused the write (SQLSTATE {code or 'none'}): {first_line(exc)}"
                raise RefusedWrite(why) from exc
            stream.metrics.db_retries.inc()
            delay = backoff.failed()
            log.warning("replicator: PostgreSQL cannot take the write (SQLSTATE %s: %s); retrying in %.1fs",
                        code or "none", first_line(exc), delay)
            await asyncio.sleep(delay)


def _applied(rows: Sequence[Mapping[str, Any]], applied: Sequence[bool]) -> None:
    stream.metrics.duplicates.inc(applied.count(False))
    # each tenant's last applied write (a duplicate or an older write the replica refused says nothing of the lag)
    latest = {row["tenant_id"]: row["last_occurred_at"] for row, done in zip(rows, applied, strict=True) if done}
    now = time.time()
    for tenant, occurred in latest.items():
        stream.metrics.tenant_child(stream.metrics.replica_lag, tenant).set(max(0.0, now - occurred.timestamp()))


async def handle(record: Incoming) -> None:
    """One record on its own (a refused batch is retried this way, to dead-letter just the culprit)."""
    row = row_for(record.value)
    applied = await _until_database_answers(lambda: apply_write(engine, row), row["tenant_id"])
    _applied([row], [applied])


async def apply_batch(records: Sequence[Incoming]) -> None:
    rows: list[dict[str, Any]] = []
    valid: list[Incoming] = []

    async def collect(record: Incoming) -> None:
        rows.append(row_for(record.value))  # an unusable payload raises InvalidInput: dead-lettered
        valid.append(record)

    for record in records:
        await stream.handle_safely(record, collect)
    if not rows:
        return
    try:
        with stream.processing(valid):
            applied = await _until_database_answers(lambda: apply_writes(engine, rows),
                                                    rows[0]["tenant_id"] if len(rows) == 1 else None)
    except Exception as exc:  # one of them is refused: apply them one by one to dead-letter just that one
        if is_infrastructure(exc):
            raise
        for record in valid:
            await stream.handle_traced(record, handle)
        return
    _applied(rows, applied)


@app.agent(stream.sources)
async def replicate(events: Any) -> None:
    await stream.run_batches(events, apply_batch, BATCH, BATCH_WAIT_S)
