"""Pruning under write load: writers emitting, the relay publishing and pruning (every 0.5 s, retention 1 s),
and a second pruner with a 50 ms retention, all at once for a bounded time, the relay starting behind (a
backlog of pending rows older than both retentions). Afterwards every emitted event is
on Kafka (at least once: duplicates allowed, none missing) and every row any prune deleted had been sent."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from outbox.retention import PruneRequest, prune
from outbox.writer import Emission, OutboxWriter
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import HEADER_DEDUPE_KEY, HEADER_TENANT
from soma.contracts.topics import ensure
from soma.settings import Settings
from tests.support.outbox_relay import consume_all, metrics_url, relay_process, relay_settings, scrape, status_counts
from tests.support.procs import wait_for
from tests.support.samples import sample

WRITERS = 4
WRITE_FOR_S = 8.0
PER_WRITER = 1500  # bound on what one writer emits (the rate is whatever the machine gives)
PER_TRANSACTION = 10

# Every deleted row's status, recorded by the database itself (this module's schema is dropped afterwards).
WATCH_DELETES = [
    "CREATE TABLE deleted_rows (id bigint, status text)",
    """CREATE FUNCTION note_delete() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN INSERT INTO deleted_rows VALUES (OLD.id, OLD.status); RETURN OLD; END $$""",
    "CREATE TRIGGER note_delete AFTER DELETE ON outbox_events FOR EACH ROW EXECUTE FUNCTION note_delete()",
]
UNWATCH = ["DROP TRIGGER IF EXISTS note_delete ON outbox_events", "DROP FUNCTION IF EXISTS note_delete()",
           "DROP TABLE IF EXISTS deleted_rows"]


def _write(writer: OutboxWriter, engine: Engine, tenant: str, worker: int, until: float, out: list[str],
           errors: list[BaseException], transactions: int = PER_WRITER // PER_TRANSACTION) -> None:
    try:
        n = 0
        while time.monotonic() < until and n < transactions * PER_TRANSACTION:
            keys = [f"w{worker}-{n + i}" for i in range(PER_TRANSACTION)]
            with Session(engine) as session, session.begin():
                writer.write(session, [Emission("chat.messages", sample("chat.messages", tenant=tenant, n=n + i),
                                                tenant, key) for i, key in enumerate(keys)])
            out.extend(keys)
            n += PER_TRANSACTION
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)


def test_pruning_under_write_load_loses_no_pending_row(outbox_db: Settings, engine: Engine, tmp_path: Path) -> None:
    catalog = load_catalog()
    ensure(outbox_db, catalog)
    writer = OutboxWriter(catalog, Codec(catalog, outbox_db), outbox_db)
    tenant = f"prune-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        for statement in UNWATCH + WATCH_DELETES:
            conn.execute(text(statement))
    config = relay_settings(outbox_db, outbox_retention=1.0, outbox_relay_prune_interval_s=0.5,
                            outbox_relay_prune_batch=200, outbox_relay_table_metrics_interval_s=0.5)
    log_file = tmp_path / "relay.log"
    emitted: list[str] = []
    errors: list[BaseException] = []
    second: list[int] = []
    stop_pruning = threading.Event()

    def pruner() -> None:
        try:
            while not stop_pruning.is_set():
                second.append(prune(engine, PruneRequest(0.05, None, batch=50, budget_s=2.0, pause=0.0)).sent)
        except BaseException as exc:
            errors.append(exc)

    # The relay starts behind: a backlog of pending rows older than either retention builds first.
    threads = [threading.Thread(target=_write, args=(writer, engine, tenant, w, time.monotonic() + WRITE_FOR_S,
                                                     emitted, errors)) for w in range(WRITERS)]
    threads.append(threading.Thread(target=pruner))
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: len(emitted) >= 400 or bool(errors), 30, what="a backlog")
        with relay_process(config, log_file) as proc:
            url = metrics_url(log_file)
            for thread in threads[:WRITERS]:
                thread.join(WRITE_FOR_S + 60)
            # The second pruner goes on while the relay catches up, then once more over what it sent.
            wait_for(lambda: not {"pending", "failed"} & set(status_counts(engine)) or bool(errors), 60,
                     what="every row published")
            stop_pruning.set()
            threads[-1].join(30)
            assert not errors, errors
            assert not any(thread.is_alive() for thread in threads)
            # A last transaction once the second pruner is done: rows only the relay's own prune can delete.
            _write(writer, engine, tenant, WRITERS, time.monotonic() + 60, emitted, errors, transactions=1)
            assert not errors, errors
            wait_for(lambda: not {"pending", "failed"} & set(status_counts(engine)), 60, what="the last rows published")
            with contextlib.suppress(TimeoutError):  # asserted below, after what matters more
                wait_for(lambda: scrape(url).get('outbox_pruned_rows_total{status="sent"}', 0) >= PER_TRANSACTION,
                         30, what="the relay's own prune")
            metrics = scrape(url)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        with engine.connect() as conn:
            found = conn.execute(text("SELECT status, count(*) FROM deleted_rows GROUP BY status")).all()
            deleted = {str(status): int(n) for status, n in found}
    finally:
        stop_pruning.set()
        for thread in threads:
            thread.join(WRITE_FOR_S + 60)
        with engine.begin() as conn:
            for statement in UNWATCH:
                conn.execute(text(statement))

    assert len(emitted) >= WRITERS * PER_TRANSACTION
    assert set(deleted) == {"sent"}, deleted  # no prune ever deleted a pending, failed or dead row
    published = [r.headers[HEADER_DEDUPE_KEY] for r in consume_all(outbox_db, "chat.messages")
                 if r.headers.get(HEADER_TENANT) == tenant]
    missing = set(emitted) - set(published)
    assert not missing, f"{len(missing)} emitted event(s) never published, e.g. {sorted(missing)[:5]}"
    assert set(published) == set(emitted)  # and nothing that was not emitted
    assert sum(second) > 0  # both pruners did delete rows while the writers and the relay ran
    assert metrics['outbox_pruned_rows_total{status="sent"}'] >= PER_TRANSACTION
    assert metrics["outbox_table_bytes"] > 0
    assert {f'outbox_table_rows{{status="{s}"}}' for s in ("pending", "failed", "dead", "sent")} <= set(metrics)
