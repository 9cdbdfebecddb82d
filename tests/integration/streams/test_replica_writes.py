"""The replica's one-statement batch write against the real PostgreSQL: the same end state and the same
`applied` answers as applying the writes one by one, in order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from soma.clients import database_engine
from soma.settings import Settings
from streams.storage.replica import apply_write, apply_writes, row_for
from streams.storage.sqlstate import verdict

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine(migrated: Settings) -> Iterator[Engine]:
    built = database_engine(migrated)
    yield built
    built.dispose()


def write(tenant: str, key: str, seconds: int, payload: str | None = '{"v": 1}', **extra: Any) -> dict[str, Any]:
    return row_for({"tenant_id": tenant, "memory_key": key, "session_id": "s",
                    "operation": "upsert" if payload is not None else "delete", "payload_json": payload,
                    "occurred_at": T0 + timedelta(seconds=seconds), "event_id": str(uuid.uuid4()), **extra})


def table(engine: Engine, tenant: str) -> dict[str, tuple[Any, bool, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT memory_key, payload, deleted, last_event_id FROM memory_replica"
                                 " WHERE tenant_id = :t"), {"t": tenant})
        return {r.memory_key: (r.payload, r.deleted, r.last_event_id) for r in rows}


def test_a_batch_ends_as_the_writes_applied_in_order(engine: Engine) -> None:
    batched, one_by_one = f"rb-{uuid.uuid4().hex[:8]}", f"ro-{uuid.uuid4().hex[:8]}"
    for tenant in (batched, one_by_one):
        apply_writes(engine, [write(tenant, "held", 10, '{"v": "held"}')])

    def batch(tenant: str) -> list[dict[str, Any]]:
        first = write(tenant, "k", 1, '{"v": 1}')
        return [first, write(tenant, "k", 3, None), first, write(tenant, "k", 2, '{"v": 2}'),
                write(tenant, "held", 5, '{"v": "older"}'), write(tenant, "new", 1, '{"ü": [1, {"x": null}]}')]

    applied = apply_writes(engine, batch(batched))
    expected = [apply_write(engine, row) for row in batch(one_by_one)]
    assert applied == expected == [True, True, False, False, False, True]

    def comparable(tenant: str) -> dict[str, tuple[Any, bool]]:
        return {key: (payload, deleted) for key, (payload, deleted, _) in table(engine, tenant).items()}

    assert comparable(batched) == comparable(one_by_one) == {
        "k": (None, True), "held": ({"v": "held"}, False), "new": ({"ü": [1, {"x": None}]}, False)}


def test_a_redelivered_batch_changes_nothing(engine: Engine) -> None:
    tenant = f"rr-{uuid.uuid4().hex[:8]}"
    rows = [write(tenant, f"k{i}", i) for i in range(50)]
    assert apply_writes(engine, rows) == [True] * 50
    before = table(engine, tenant)
    assert apply_writes(engine, rows) == [False] * 50
    assert table(engine, tenant) == before


def test_a_value_postgresql_refuses_fails_the_batch_as_the_records_fault(engine: Engine) -> None:
    tenant = f"rx-{uuid.uuid4().hex[:8]}"
    good, bad = write(tenant, "good", 1), write(tenant, "bad", 1, '{"nul": "\\u0000"}')
    with pytest.raises(DBAPIError) as refused:
        apply_writes(engine, [good, bad])
    assert verdict(refused.value) == "record"  # dead-lettered, never retried (streams/storage/sqlstate.py)
    assert table(engine, tenant) == {}  # nothing half-written
    assert apply_write(engine, good) is True
