"""`outbox.emit` / `emit_async` against the real PostgreSQL: the caller's transaction decides, bad input is refused."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from outbox import Emitter, emit, emit_async
from outbox.api import default_emitter
from outbox.errors import EmitError
from outbox.models import OutboxEvent
from soma.clients import async_database_engine, database_engine
from soma.settings import Settings
from tests.support.outbox_relay import own_schema
from tests.support.samples import sample


@pytest.fixture(scope="module")
def api_db(settings: Settings) -> Iterator[Settings]:
    with own_schema(settings, "api_emit") as own:
        yield own


@pytest.fixture(scope="module")
def engine(api_db: Settings) -> Iterator[Engine]:
    built = database_engine(api_db)
    yield built
    built.dispose()


@pytest.fixture
def tenant() -> str:
    return f"api-{uuid.uuid4().hex[:8]}"


def _rows(engine: Engine, tenant: str) -> list[OutboxEvent]:
    with Session(engine) as session:
        return list(session.scalars(select(OutboxEvent).where(OutboxEvent.tenant_id == tenant)))


def test_emit_in_a_session_commits_with_the_caller(engine: Engine, tenant: str) -> None:
    event = sample("chat.messages", tenant=tenant)
    with Session(engine) as session, session.begin():
        row = emit(session, "chat.messages", event, tenant=tenant, dedupe_key="order-1")  # type: ignore[arg-type]
        assert row.status == "pending"
        assert _rows(engine, tenant) == []  # invisible to others until the caller commits
    [stored] = _rows(engine, tenant)
    assert stored.key == f"{tenant}:{event['session_id']}"
    assert stored.headers["tenant"] == tenant
    assert stored.headers["dedupe-key"] == "order-1"
    assert stored.headers["traceparent"].startswith("00-")
    assert default_emitter().codec.decode("chat.messages", stored.payload)["content"] == event["content"]


def test_rollback_leaves_no_row(engine: Engine, tenant: str) -> None:
    with Session(engine) as session:
        session.begin()
        emit(session, "chat.messages", sample("chat.messages", tenant=tenant),  # type: ignore[arg-type]
             tenant=tenant, dedupe_key="a")
        session.rollback()
    assert _rows(engine, tenant) == []


def test_a_repeated_dedupe_key_returns_the_first_row(engine: Engine, tenant: str) -> None:
    emitter = Emitter()
    with Session(engine) as session, session.begin():
        first = emitter.emit(session, "chat.messages", sample("chat.messages", tenant=tenant, n=1),
                             tenant=tenant, dedupe_key="same")
        first_id, first_event = first.id, first.event_id
    with Session(engine) as session, session.begin():
        again = emitter.emit(session, "chat.messages", sample("chat.messages", tenant=tenant, n=2),
                             tenant=tenant, dedupe_key="same")
        assert (again.id, again.event_id) == (first_id, first_event)
    assert len(_rows(engine, tenant)) == 1


def test_emit_async_in_an_async_session(api_db: Settings, engine: Engine, tenant: str) -> None:
    async def run() -> None:
        async_engine = async_database_engine(api_db)
        try:
            async with AsyncSession(async_engine) as session, session.begin():
                row = await emit_async(session, "chat.messages",  # type: ignore[call-overload]
                                       sample("chat.messages", tenant=tenant), tenant=tenant, dedupe_key="async-1")
                assert row.id is not None
            async with AsyncSession(async_engine) as session:
                await session.begin()
                await emit_async(session, "chat.messages",  # type: ignore[call-overload]
                                 sample("chat.messages", tenant=tenant), tenant=tenant, dedupe_key="async-2")
                await session.rollback()
        finally:
            await async_engine.dispose()

    asyncio.run(run())
    assert [row.dedupe_key for row in _rows(engine, tenant)] == ["async-1"]


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"headers": {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}}, "header 'traceparent'"),
        ({"headers": {"Tenant": "other"}}, "header 'Tenant'"),
        ({"headers": {"dedupe-key": "x"}}, "header 'dedupe-key'"),
        ({"headers": {"x-origin": 5}}, "header 'x-origin' must be a string"),
        ({"key": "someone-else:s1"}, "differs from the catalog's key"),
        ({"tenant": "bad tenant"}, "tenant"),
        ({"tenant": "t" * 201}, "tenant"),
        ({"dedupe_key": ""}, "dedupe_key"),
        ({"topic": "no.such.topic"}, "unknown topic 'no.such.topic'"),
        ({"event": {"sequence": 1}}, "field"),
        ({"event": {"misspelt": 1}}, "misspelt"),
        ({"event": {"content": "\udcff"}}, "content"),
        ({"event": {"content": "x" * 2_000_000}}, "exceeds the topic's limit"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(engine: Engine, tenant: str, options: dict[str, object],
                                                  needle: str) -> None:
    given = {"topic": "chat.messages", "tenant": tenant, "dedupe_key": "bad", "key": None, "headers": None} | options
    event = sample("chat.messages", tenant=tenant)
    event.update(options.get("event", {}))  # type: ignore[call-overload]
    if options.get("event") == {"sequence": 1}:
        del event["session_id"]
    with Session(engine) as session, session.begin(), pytest.raises(EmitError) as caught:
        Emitter().emit(session, str(given["topic"]), event, tenant=given["tenant"],  # type: ignore[arg-type]
                       dedupe_key=given["dedupe_key"], key=given["key"], headers=given["headers"])  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    assert needle in message
    assert _rows(engine, tenant) == []


def test_the_catalog_key_may_be_given(engine: Engine, tenant: str) -> None:
    event = sample("chat.messages", tenant=tenant)
    with Session(engine) as session, session.begin():
        row = Emitter().emit(session, "chat.messages", event, tenant=tenant, dedupe_key="k",
                             key=f"{tenant}:{event['session_id']}", headers={"x-origin": "billing"})
        assert row.headers["x-origin"] == "billing"
