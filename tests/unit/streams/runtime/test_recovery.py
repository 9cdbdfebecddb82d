"""The end of a table recovery: no source record is delivered between the resume of the partitions and the seek."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.tables.recovery import Recovery

from streams.runtime.recovery import StreamRecovery, StreamTableManager


def test_every_stream_app_recovers_with_stream_recovery() -> None:
    from streams.worker import app

    assert isinstance(app.tables, StreamTableManager)
    assert isinstance(app.tables.recovery, StreamRecovery)


def test_the_flow_is_stopped_before_faust_resumes_and_seeks_the_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faust's completion (resume partitions, seek, empty the queues, resume the flow) starts on a stopped flow."""
    from streams.worker import app

    flow_at_completion: list[tuple[str, int, bool]] = []

    def faust_step(name: str) -> Any:
        async def step(self: Recovery, generation_id: int = 0) -> None:
            flow_at_completion.append((name, generation_id, app.consumer.flow_active))
            app.consumer.resume_flow()  # what Faust does last
        return step

    monkeypatch.setattr(Recovery, "on_recovery_completed", faust_step("tables recovered"))
    monkeypatch.setattr(Recovery, "_resume_streams", faust_step("no tables"))
    recovery = app.tables.recovery
    app.consumer.resume_flow()  # recovery turned the flow on to read the changelogs
    asyncio.run(recovery.on_recovery_completed(7))
    asyncio.run(recovery._resume_streams(8))
    assert flow_at_completion == [("tables recovered", 7, False), ("no tables", 8, False)]
    assert app.consumer.flow_active
