"""Events in hand are finished before Faust may acknowledge them, or the process exits uncommitted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


def test_a_cancelled_agent_finishes_its_batch_first() -> None:
    from streams.replicator import stream

    finished: list[bool] = []

    async def batch() -> None:
        await asyncio.sleep(0.2)
        finished.append(True)

    async def scenario() -> None:
        agent = asyncio.ensure_future(stream.complete(batch()))
        await asyncio.sleep(0.05)
        agent.cancel()  # what Faust's shutdown does to an agent
        with pytest.raises(asyncio.CancelledError):
            await agent

    asyncio.run(scenario())
    assert finished == [True]  # done before the agent gave its events back


def test_a_failed_batch_exits_before_anything_is_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.replicator import stream

    exits: list[str] = []
    monkeypatch.setattr(stream, "_exit_uncommitted", lambda why: exits.append(why))

    async def batch() -> Any:
        raise RuntimeError("broker said no")

    asyncio.run(stream.complete(batch()))
    assert exits == ["RuntimeError: broker said no"]
