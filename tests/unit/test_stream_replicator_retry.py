"""The replicator waits out a database outage on the same record; a bad record is its own failure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.exc import DataError, OperationalError

from streams.app import Incoming
from streams.errors import InvalidInput


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
                        replicator.stream.settings.model_copy(update={"replicator_retry_base_s": 0.01}))
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
