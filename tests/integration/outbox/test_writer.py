"""The writer against the real PostgreSQL: joins the caller's transaction, idempotent, nothing half-written."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from outbox.errors import EmitError
from outbox.models import OutboxEvent
from outbox.relay.wakeup import Wakeup
from outbox.writer import Emission, OutboxWriter
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.settings import Settings
from tests.support.procs import run_soma
from tests.support.samples import sample


@pytest.fixture(scope="module")
def writer(settings: Settings) -> OutboxWriter:
    catalog = load_catalog()
    return OutboxWriter(catalog, Codec(catalog, settings), settings)


@pytest.fixture
def tenant() -> str:
    return f"w-{uuid.uuid4().hex[:8]}"


def _count(engine: Engine, tenant: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(OutboxEvent.tenant_id == tenant)).scalar_one())


def test_emit_joins_the_callers_transaction(engine: Engine, writer: OutboxWriter, tenant: str) -> None:
    event = sample("chat.messages", tenant=tenant)
    with Session(engine) as session, session.begin():
        session.execute(text("CREATE TEMP TABLE caller_state (v int) ON COMMIT DROP"))  # the caller's own work
        row = writer.emit(session, "chat.messages", event, tenant=tenant, dedupe_key="order-1")
        assert row.id is not None
        assert row.status == "pending"
        assert _count(engine, tenant) == 0  # not visible to others before the caller commits
    with Session(engine) as session:
        stored = session.scalars(select(OutboxEvent).where(OutboxEvent.tenant_id == tenant)).one()
        assert stored.headers["dedupe-key"] == "order-1"
        assert stored.headers["tenant"] == tenant
        assert stored.key == f"{tenant}:{event['session_id']}"
        assert writer.codec.decode("chat.messages", stored.payload)["content"] == event["content"]


def test_rollback_leaves_no_row(engine: Engine, writer: OutboxWriter, tenant: str) -> None:
    with Session(engine) as session:
        session.begin()
        writer.emit(session, "chat.messages", sample("chat.messages", tenant=tenant), tenant=tenant, dedupe_key="a")
        session.rollback()
    assert _count(engine, tenant) == 0


def test_emitting_the_same_dedupe_key_again_returns_the_existing_row(
    engine: Engine, writer: OutboxWriter, tenant: str
) -> None:
    with Session(engine) as session, session.begin():
        first = writer.emit(session, "chat.messages", sample("chat.messages", tenant=tenant, n=1),
                            tenant=tenant, dedupe_key="same")
        first_id, first_event = first.id, first.event_id
    with Session(engine) as session, session.begin():
        again = writer.write(session, [Emission("chat.messages", sample("chat.messages", tenant=tenant, n=2),
                                                tenant, "same")])[0]
        assert not again.created
        assert again.row.id == first_id
        assert again.row.event_id == first_event
    assert _count(engine, tenant) == 1
    # Same dedupe key under another tenant is another event.
    other = f"{tenant}-other"
    with Session(engine) as session, session.begin():
        writer.emit(session, "chat.messages", sample("chat.messages", tenant=other), tenant=other, dedupe_key="same")
    assert _count(engine, other) == 1


def test_concurrent_duplicate_emits_make_one_row(engine: Engine, writer: OutboxWriter, tenant: str) -> None:
    """The second transaction waits for the first's commit, then returns the committed row."""
    results: list[tuple[int, bool]] = []
    first_inserted = threading.Event()

    def second() -> None:
        first_inserted.wait(10)
        with Session(engine) as session, session.begin():
            emitted = writer.write(session, [Emission("chat.messages", sample("chat.messages", tenant=tenant),
                                                      tenant, "race")])[0]
            results.append((emitted.row.id, emitted.created))

    thread = threading.Thread(target=second)
    thread.start()
    with Session(engine) as session, session.begin():
        row = writer.emit(session, "chat.messages", sample("chat.messages", tenant=tenant), tenant=tenant,
                          dedupe_key="race")
        first_id = row.id
        first_inserted.set()
        time.sleep(0.5)  # the other transaction is now blocked on our uncommitted row
    thread.join(15)
    assert results == [(first_id, False)]
    assert _count(engine, tenant) == 1


def test_emit_many_in_one_transaction(engine: Engine, writer: OutboxWriter, tenant: str) -> None:
    emissions = [Emission("chat.messages", sample("chat.messages", tenant=tenant, n=i), tenant, f"k{i}")
                 for i in range(1200)]  # more than one INSERT statement's worth
    emissions.append(Emission("chat.messages", sample("chat.messages", tenant=tenant), tenant, "k7"))  # repeat
    with Session(engine) as session, session.begin():
        emitted = writer.write(session, emissions)
        assert len(emitted) == 1201
        assert [e.row.dedupe_key for e in emitted[:3]] == ["k0", "k1", "k2"]
        assert emitted[-1].row.id == emitted[7].row.id
        assert not emitted[-1].created
        assert emitted[7].created
    assert _count(engine, tenant) == 1200


def test_one_bad_event_in_a_batch_writes_nothing(engine: Engine, writer: OutboxWriter, tenant: str) -> None:
    emissions = [Emission("chat.messages", sample("chat.messages", tenant=tenant, n=i), tenant, f"k{i}")
                 for i in range(5)]
    emissions.insert(3, Emission("chat.messages", {"session_id": "s", "sequence": 1, "role": "nobody",
                                                   "content": "x"}, tenant, "bad"))
    with Session(engine) as session, session.begin():
        with pytest.raises(EmitError, match="field 'role'"):
            writer.write(session, emissions)
        # The caller's transaction is intact: it can carry on (here: commit nothing else).
        assert session.execute(text("SELECT 1")).scalar() == 1
    assert _count(engine, tenant) == 0


def test_insert_wakes_an_idle_relay_only(engine: Engine, writer: OutboxWriter, tenant: str) -> None:
    """Coalesced NOTIFY: a writer notifies only while a relay advertises that it is idle."""
    wakeup = Wakeup(engine)
    try:
        def emit(key: str) -> None:
            with Session(engine) as session, session.begin():
                writer.emit(session, "chat.messages", sample("chat.messages", tenant=tenant), tenant=tenant,
                            dedupe_key=key)

        emit("busy")  # relay busy: no notification
        assert not wakeup.wait(0.3)
        assert wakeup.try_idle()
        emit("idle")
        assert wakeup.wait(5)
        wakeup.busy()
        emit("busy-again")
        assert not wakeup.wait(0.3)
        # The check runs at commit: a relay that went idle while a writer was mid-transaction
        # (after its INSERT) is still notified when that writer commits, so it cannot miss the row.
        with Session(engine) as session, session.begin():
            writer.emit(session, "chat.messages", sample("chat.messages", tenant=tenant), tenant=tenant,
                        dedupe_key="open")
            assert wakeup.try_idle()
        assert wakeup.wait(5)
        wakeup.busy()
        # ...and once per transaction, however many rows it inserts.
        assert wakeup.try_idle()
        with Session(engine) as session, session.begin():
            writer.emit_many(session, [Emission("chat.messages", sample("chat.messages", tenant=tenant, n=i),
                                                tenant, f"many-{i}") for i in range(50)])
        assert wakeup.wait(5)
        assert not wakeup.wait(0.3)
    finally:
        wakeup.close()


def test_cli_emit_prints_the_row_and_is_idempotent(engine: Engine, settings: Settings, tenant: str) -> None:
    value = json.dumps({"session_id": "s1", "sequence": 1, "role": "user", "content": "from the cli"})
    args = ("outbox", "emit", "chat.messages", "--tenant", tenant, "--dedupe-key", "cli-1", "--value-json", value)
    first = run_soma(settings, *args)
    assert first.returncode == 0, first.stderr
    row = json.loads(first.stdout)
    assert row["created"] is True
    assert row["key"] == f"{tenant}:s1"
    assert row["status"] == "pending"
    second = run_soma(settings, *args)
    assert json.loads(second.stdout) == {**row, "created": False}
    assert _count(engine, tenant) == 1


@pytest.mark.parametrize(
    ("value", "extra", "expected"),
    [
        ('{"session_id": "s1", "sequence": "x", "role": "user", "content": "c"}', (), "field 'sequence'"),
        ("{not json", (), "not JSON"),
        ('{"session_id": "s1", "sequence": 1, "role": "user", "content": "c"}', ("--header", "tenant=x"),
         "header 'tenant'"),
    ],
)
def test_cli_emit_bad_input_is_one_line_and_writes_nothing(
    engine: Engine, settings: Settings, tenant: str, value: str, extra: tuple[str, ...], expected: str
) -> None:
    result = run_soma(settings, "outbox", "emit", "chat.messages", "--tenant", tenant, "--dedupe-key", "d",
                      "--value-json", value, *extra)
    assert result.returncode == 1
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert _count(engine, tenant) == 0


def _oversized(tenant: str) -> dict[str, object]:
    """A chat message of about 1.1 MB: over the default record limit (1,000,000 bytes)."""
    return {"tenant_id": tenant, "session_id": "s1", "sequence": 1, "role": "user", "content": "x" * 1_100_000}


def test_an_oversized_event_is_refused_before_anything_is_written(
    engine: Engine, writer: OutboxWriter, tenant: str
) -> None:
    small = Emission("chat.messages", sample("chat.messages", tenant=tenant), tenant, "small")
    big = Emission("chat.messages", _oversized(tenant), tenant, "big")
    with Session(engine) as session, session.begin():
        with pytest.raises(EmitError, match=r"chat.messages: record of \d+ bytes .* exceeds the topic's limit of "
                                            r"1000000 bytes \(tenant '.*', dedupe key 'big'\)"):
            writer.write(session, [small, big])
        assert session.execute(text("SELECT 1")).scalar() == 1  # the caller's transaction is intact
    assert _count(engine, tenant) == 0


def test_cli_emit_of_an_oversized_event_is_one_line_exit_1_and_writes_nothing(
    engine: Engine, settings: Settings, tenant: str, tmp_path: Path
) -> None:
    event = tmp_path / "big.json"
    event.write_text(json.dumps(_oversized(tenant)))
    result = run_soma(settings, "outbox", "emit", "chat.messages", "--tenant", tenant, "--dedupe-key", "big",
                      "--file", str(event))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "exceeds the topic's limit of 1000000 bytes" in result.stderr
    assert "Traceback" not in result.stderr
    assert _count(engine, tenant) == 0


def test_cli_emit_from_a_file_writes_the_event(engine: Engine, settings: Settings, tenant: str,
                                               tmp_path: Path) -> None:
    event = tmp_path / "one.json"
    event.write_text(json.dumps({"session_id": "s1", "sequence": 1, "role": "user", "content": "from a file"}))
    result = run_soma(settings, "outbox", "emit", "chat.messages", "--tenant", tenant, "--dedupe-key", "f-1",
                      "--file", str(event))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["created"] is True
    assert _count(engine, tenant) == 1
