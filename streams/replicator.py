"""replicator: memory.writes -> the PostgreSQL `memory_replica` table, idempotent by event id.

Run: `faust -A streams.replicator worker`. While PostgreSQL is unreachable the agent retries the
same record with exponential backoff and does not move on, so its offset is not committed; a
record that fails for its own reasons (invalid payload, a value the table refuses) goes to the
DLQ. Reports replica lag (now - occurred_at of the last applied write) and the DLQ count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from opentelemetry.trace import SpanKind
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from soma import telemetry
from soma.clients import database_engine
from streams.app import Incoming, StreamApp
from streams.errors import InvalidInput
from streams.storage.replica import apply_write, row_for

stream = StreamApp("replicator", ["memory.writes"], needs=("postgresql",), tables=("memory_replica",))
app = stream.app
engine = database_engine(stream.settings)
log = logging.getLogger("streams.replicator")
DB_ATTRIBUTES = {
    "db.system.name": "postgresql", "db.collection.name": "memory_replica", "db.operation.name": "INSERT",
    "db.namespace": str(engine.url.database or ""),
}


async def handle(record: Incoming) -> None:
    row = row_for(record.value)
    delay = stream.settings.replicator_retry_base_s
    while True:
        try:
            attributes = DB_ATTRIBUTES | {"soma.tenant": row["tenant_id"]} if stream.tracer else None
            with telemetry.current_span(stream.tracer, "upsert memory_replica", kind=SpanKind.CLIENT,
                                        attributes=attributes) as span:
                applied = await asyncio.to_thread(apply_write, engine, row)
                if span is not None and span.is_recording():
                    span.set_attribute("soma.replica.applied", applied)
            break
        except (OperationalError, InterfaceError) as exc:
            stream.metrics.db_retries.inc()
            log.warning("replicator: PostgreSQL unavailable (%s); retrying in %.1fs",
                        str(exc.orig or exc).splitlines()[0], delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, stream.settings.replicator_retry_max_s)
        except DBAPIError as exc:  # the database refuses this record's values
            raise InvalidInput(f"database refused the write: {str(exc.orig or exc).splitlines()[0]}") from exc
    if not applied:
        stream.metrics.duplicates.inc()
    stream.metrics.replica_lag.labels(record.tenant).set(max(0.0, time.time() - row["last_occurred_at"].timestamp()))


@app.agent(stream.sources)
async def replicate(events: Any) -> None:
    await stream.run(events, handle)
