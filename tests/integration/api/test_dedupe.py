"""The dedupe contract on the real PostgreSQL and Redis, and effectively-once with PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateSchema, DropSchema

from soma import open_dedupe
from soma.clients import database_engine
from soma.dedupe import DedupeStore
from soma.errors import ConsumeError, InfrastructureUnavailable
from soma.settings import Settings
from tests.support.dedupe_contract import Effect, run_contract
from tests.support.outbox_relay import own_schema

ALL_CASES = ["first_time_then_repeat", "a_failed_effect_is_not_marked", "bad_ids_are_one_line",
             "scopes_are_apart", "marks_expire_after_the_ttl"]


@pytest.fixture(scope="module")
def db(settings: Settings) -> Iterator[Settings]:
    with own_schema(settings, "api_dedupe") as own:  # migrated: soma_dedupe is there
        yield own


@pytest.fixture(scope="module")
def engine(db: Settings) -> Iterator[Engine]:
    built = database_engine(db)
    with built.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS charges (event_id text, amount int)"))
    yield built
    built.dispose()


def test_the_postgresql_store_keeps_the_contract(db: Settings, engine: Engine) -> None:
    @contextmanager
    def transaction() -> Iterator[Session]:
        with Session(engine) as session, session.begin():
            yield session

    def store(**options: Any) -> DedupeStore:
        return open_dedupe(settings=db, **options)

    assert list(run_contract(store, transaction)) == ALL_CASES


def test_the_redis_store_keeps_the_contract(db: Settings) -> None:
    @contextmanager
    def transaction() -> Iterator[None]:
        yield None

    def store(**options: Any) -> DedupeStore:
        return open_dedupe(db.redis.url_value(), **options)

    assert list(run_contract(store, transaction)) == ALL_CASES


def _charge(engine: Engine, store: DedupeStore, event_id: str, fail: bool = False) -> None:
    """A non-idempotent handler: one charge row per event, the mark in the same transaction."""
    with Session(engine) as session, session.begin(), store.once(event_id, session=session) as first:
        if first:
            session.execute(text("INSERT INTO charges VALUES (:e, 10)"), {"e": event_id})
            if fail:
                raise Effect


def _charges(engine: Engine, event_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM charges WHERE event_id = :e"), {"e": event_id}).scalar_one())


def test_redelivery_with_the_postgresql_store_is_effectively_once(db: Settings, engine: Engine) -> None:
    store = open_dedupe(settings=db, scope=f"billing-{uuid.uuid4().hex[:6]}")
    event_id = str(uuid.uuid4())
    with pytest.raises(Effect):
        _charge(engine, store, event_id, fail=True)  # crashed: effect and mark rolled back together
    assert _charges(engine, event_id) == 0
    for _ in range(3):  # delivered again, and again
        _charge(engine, store, event_id)
    assert _charges(engine, event_id) == 1
    store.close()


def test_a_concurrent_duplicate_waits_and_then_skips(db: Settings, engine: Engine) -> None:
    store = open_dedupe(settings=db, scope=f"race-{uuid.uuid4().hex[:6]}")
    event_id = str(uuid.uuid4())
    claimed = threading.Event()
    results: list[bool] = []

    def second() -> None:
        claimed.wait(30)
        with Session(engine) as session, session.begin(), store.once(event_id, session=session) as first:
            results.append(first)

    thread = threading.Thread(target=second)
    thread.start()
    with Session(engine) as session, session.begin(), store.once(event_id, session=session) as first:
        assert first
        claimed.set()
        deadline = time.monotonic() + 30
        # The other transaction is blocked on our row lock (visible in pg_locks) until we commit.
        while not _waiting_on_a_lock(engine):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    thread.join(30)
    assert results == [False]
    store.close()


def _waiting_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one())


def test_the_postgresql_store_refuses_to_mark_outside_a_session(db: Settings) -> None:
    store = open_dedupe(settings=db, scope="s")
    with pytest.raises(ConsumeError, match="session="), store.once("e1"):
        pass


def test_an_unreachable_redis_is_one_line() -> None:
    store = open_dedupe("redis://:hunter2@127.0.0.1:1/0", scope="s")
    with pytest.raises(Exception, match="redis dedupe store") as caught, store.once("e1"):
        pass
    assert "hunter2" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_database_without_the_migration_is_one_line(settings: Settings) -> None:
    """The run's schema before `soma db upgrade` created soma_dedupe there (own_schema migrates; this does not)."""
    bare = settings.replace(database_schema=f"{settings.database.database_schema}_bare_{uuid.uuid4().hex[:6]}")
    base = database_engine(settings)
    with base.begin() as conn:
        conn.execute(CreateSchema(str(bare.database.database_schema)))
    engine = database_engine(bare)
    store = open_dedupe(settings=bare, scope="s")
    try:
        with pytest.raises(InfrastructureUnavailable, match="soma db upgrade") as caught, \
                Session(engine) as session, session.begin(), store.once("e1", session=session):
            pass
        assert "\n" not in str(caught.value)
    finally:
        store.close()
        engine.dispose()
        with base.begin() as conn:
            conn.execute(DropSchema(str(bare.database.database_schema), cascade=True))
        base.dispose()
