"""The replicator waits out a database outage on the same record; a bad record is its own failure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.exc import DataError, OperationalError

from streams.errors import InvalidInput
from streams.runtime.records import Incoming


def _record(**overrides: Any) -> Incoming:
    value = {"event_id": "e1", "tenant_id": "t", "occurred_at": datetime.now(UTC), "memory_key": "k",
             "session_id": None, "operation": "upsert", "payload_json": '{"a": 1}', "source_event_id": None,
             **overrides}
    return Incoming("memory.writes", value, 0, 0, None, b"", {})


def test_outage_is_retried_until_the_database_is_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.replicator as replicator

    calls = []

    def flaky(engine: Any, row: Any) -> bool:
        calls.append(row)
        if len(calls) < 3:
            raise OperationalError("INSERT", {}, Exception("connection refused"))
        return True

    monkeypatch.setattr(replicator, "apply_write", flaky)
    monkeypatch.setattr(replicator.stream, "settings",
                        replicator.stream.settings.replace(replicator_retry_base_s=0.01))
    asyncio.run(replicator.handle(_record()))
    assert len(calls) == 3


def test_refused_values_and_bad_payloads_are_invalid_input(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.replicator as replicator

    def refuse(engine: Any, row: Any) -> bool:
        raise DataError("INSERT", {}, Exception("value too long"))

    monkeypatch.setattr(replicator, "apply_write", refuse)
    with pytest.raises(InvalidInput, match="refused"):
        asyncio.run(replicator.handle(_record()))
    with pytest.raises(InvalidInput, match="not JSON"):
        asyncio.run(replicator.handle(_record(payload_json="{nope")))


def test_a_refused_batch_is_applied_record_by_record_and_only_the_culprit_is_dead_lettered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import streams.replicator as replicator

    applied: list[str] = []
    dead: list[int] = []

    def batch(engine: Any, rows: Any) -> list[bool]:
        raise DataError("INSERT", {}, Exception("value too long"))

    def one(engine: Any, row: Any) -> bool:
        if row["memory_key"] == "bad":
            raise DataError("INSERT", {}, Exception("value too long"))
        applied.append(row["memory_key"])
        return True

    async def dead_letter(topic: str, partition: int, offset: int, *args: Any) -> None:
        dead.append(offset)

    monkeypatch.setattr(replicator, "apply_writes", batch)
    monkeypatch.setattr(replicator, "apply_write", one)
    monkeypatch.setattr(replicator.stream, "dead_letter", dead_letter)
    records = [Incoming("memory.writes", {**_record().value, "memory_key": key, "event_id": f"e{n}"}, 0, n, None,
                        b"", {}) for n, key in enumerate(["a", "bad", "c"])]
    records.append(_record(payload_json="{nope"))  # invalid before the database sees it
    records[-1] = Incoming("memory.writes", records[-1].value, 0, 3, None, b"", {})
    asyncio.run(replicator.apply_batch(records))
    assert applied == ["a", "c"]
    assert dead == [3, 1]  # the bad payload at once, then the refused value found record by record


class _Driver(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"driver error {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", ["25006", "42501", "08006", "57P01", "40001"])
def test_standby_grant_connection_and_serialization_errors_are_retried_never_dead_lettered(
    monkeypatch: pytest.MonkeyPatch, sqlstate: str,
) -> None:
    from sqlalchemy.exc import InternalError, ProgrammingError

    import streams.replicator as replicator

    calls = []
    error = {"25006": InternalError, "42501": ProgrammingError}.get(sqlstate, OperationalError)

    def failing_twice(engine: Any, row: Any) -> bool:
        calls.append(row)
        if len(calls) < 3:
            raise error("INSERT", {}, _Driver(sqlstate))
        return True

    monkeypatch.setattr(replicator, "apply_write", failing_twice)
    monkeypatch.setattr(replicator.stream, "settings",
                        replicator.stream.settings.replace(replicator_retry_base_s=0.01))
    asyncio.run(replicator.handle(_record()))
    assert len(calls) == 3


def test_a_data_error_with_its_sqlstate_is_refused_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.replicator as replicator
    from streams.errors import RefusedWrite

    def refuse(engine: Any, row: Any) -> bool:
        raise DataError("INSERT", {}, _Driver("22P05"))

    monkeypatch.setattr(replicator, "apply_write", refuse)
    with pytest.raises(RefusedWrite, match=r"SQLSTATE 22P05"):
        asyncio.run(replicator.handle(_record()))
    with pytest.raises(Exception, match="payload_json: JSON too deeply nested"):
        asyncio.run(replicator.handle(_record(payload_json="[" * 5_000 + "]" * 5_000)))
