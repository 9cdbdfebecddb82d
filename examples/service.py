#!/usr/bin/env python3
"""A complete example service on the Soma Event Platform: emit inside a transaction, consume with dedupe.

It needs only the installed package (`pip install soma-events`), a database migrated with
`soma db upgrade`, the catalog's topics (`soma topics ensure`) and a relay moving the outbox to
Kafka (`soma outbox relay`, or `soma up`; `--relay` runs one here until the outbox is drained).
Settings come from the environment like every soma command (SOMA_DATABASE_URL,
SOMA_KAFKA_BOOTSTRAP, SOMA_TOPIC_PREFIX, ...).

    python examples/service.py --tenant acme --timeout 60 [--relay]

1. Joins a consumer group of its own on chat.messages (starting at the topic's end).
2. In ONE database transaction: writes a row of its own table and emits a chat message. The event
   exists only if that transaction commits; the relay publishes it afterwards.
3. Consumes until its message comes back from Kafka, handling each event at least once, with the
   dedupe store marking it in the same transaction as the handler's write (effectively once).
Prints one line and exits 0; exits 1 with a one-line reason on a timeout or an error.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from typing import Final

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from outbox import emit
from soma import consume, open_dedupe
from soma.clients import database_engine, database_errors
from soma.contracts.events import ConsumedEvent
from soma.dedupe import DedupeStore
from soma.errors import SomaError
from soma.settings import load_settings

TOPIC: Final = "chat.messages"  # Final: mypy checks the event against this topic's TypedDict
# The service's own table (a real service creates it with its own migrations).
CREATE_NOTES = text(
    "CREATE TABLE IF NOT EXISTS example_service_notes ("
    " event_id text PRIMARY KEY, tenant_id text NOT NULL, note text NOT NULL,"
    " at timestamptz NOT NULL DEFAULT now())"
)
ADD_NOTE = text("INSERT INTO example_service_notes (event_id, tenant_id, note) VALUES (:event_id, :tenant, :note)")


def emit_greeting(engine: Engine, tenant: str) -> str:
    """The service's own write and its event, in one transaction: both or neither. Returns the event id."""
    session_id = f"example-{uuid.uuid4().hex[:12]}"
    with Session(engine) as session, session.begin():
        row = emit(session, TOPIC, {
            "session_id": session_id, "sequence": 1, "role": "user", "content": "hello from a service",
        }, tenant=tenant, dedupe_key=f"{session_id}-1")  # emitting this key again: a no-op
        session.execute(ADD_NOTE, {"event_id": row.event_id, "tenant": tenant, "note": "emitted"})
        return row.event_id


def handle(engine: Engine, store: DedupeStore, event: ConsumedEvent, tenant: str) -> None:
    """Not idempotent on its own (it inserts a row): the dedupe mark joins its transaction."""
    event_id = str(event.value["event_id"])
    with Session(engine) as session, session.begin(), store.once(event_id, session=session) as first:
        if first and event.value["tenant_id"] == tenant:  # a redelivered event is skipped here
            session.execute(ADD_NOTE, {"event_id": f"{event_id}/handled", "tenant": tenant, "note": "consumed"})


def run(tenant: str, group: str, timeout_s: float, relay: bool) -> str:
    settings = load_settings()
    engine = database_engine(settings)
    store = open_dedupe(scope=group, settings=settings)  # PostgreSQL: table soma_dedupe (soma db upgrade)
    try:
        with database_errors(settings):  # "cannot connect" becomes one line naming SOMA_DATABASE_URL
            with engine.begin() as connection:
                connection.execute(CREATE_NOTES)
            with consume(TOPIC, group=group, settings=settings, from_beginning=False,
                         idle_timeout_s=timeout_s) as events:
                if not events.wait_assigned(timeout_s):
                    raise TimeoutError(f"no partitions assigned to group {group!r} within {timeout_s:.0f}s")
                emitted = emit_greeting(engine, tenant)
                if relay:
                    relay_once(timeout_s)
                deadline = time.monotonic() + timeout_s
                for event in events:  # each offset is committed after this body is done with it
                    if event.error is not None:  # a poison record: reported, skipped, not fatal
                        print(f"example service: skipping an undecodable record: {event.error}", file=sys.stderr)
                        continue
                    handle(engine, store, event, tenant)
                    if event.value["event_id"] == emitted:
                        return (f"example service: tenant {tenant!r} emitted event {emitted} and consumed it back"
                                f" from {settings.topic_name(TOPIC)} partition {event.partition} offset {event.offset}")
                    if time.monotonic() > deadline:
                        break
            raise TimeoutError(f"event {emitted} did not come back from Kafka within {timeout_s:.0f}s"
                               " (is a relay running? `soma outbox relay`, or pass --relay)")
    finally:
        store.close()
        engine.dispose()


def relay_once(timeout_s: float) -> None:
    """`soma outbox relay --drain` of the same installation: publishes what is due, then exits."""
    command = [sys.executable, "-m", "soma", "outbox", "relay", "--drain", "--no-metrics", "--quiet"]
    try:
        result = subprocess.run(command, timeout=timeout_s, capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired as exc:
        raise TimeoutError(f"the relay did not drain the outbox within {timeout_s:.0f}s") from exc
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the relay failed (exit {result.returncode}): {last}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", default="example", help="tenant to emit for (default: example)")
    parser.add_argument("--group", default=None, help="consumer group (default: a new one per run)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each step (default 60)")
    parser.add_argument("--relay", action="store_true", help="run `soma outbox relay --drain` after emitting")
    args = parser.parse_args(argv)
    group = args.group or f"example-service-{uuid.uuid4().hex[:8]}"
    try:
        print(run(args.tenant, group, args.timeout, args.relay))
    except (SomaError, TimeoutError, RuntimeError) as exc:
        print(f"example service: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
