"""The one agent loop: config first, then batches of decoded records, each run to its end by `complete`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from streams.runtime.batches import Batches
from streams.runtime.records import Incoming


class Events:
    def __init__(self, batches: list[list[Any]]) -> None:
        self.batches = batches
        self.asked: list[tuple[int, float]] = []

    async def taken(self, size: int, within: float) -> AsyncIterator[list[Any]]:
        self.asked.append((size, within))
        for batch in self.batches:
            yield batch


class Loop(Batches):
    def __init__(self) -> None:
        self.log: list[str] = []

    async def wait_for_config(self) -> None:
        self.log.append("config")

    async def decode(self, event: Any) -> Incoming | None:
        if event == "poison":
            self.log.append("dead-lettered")
            return None
        return Incoming("t", {"event_id": event, "tenant_id": "a"}, 0, 0, None, b"", {})

    def take(self, events: Any, size: int, within: float) -> AsyncIterator[list[Any]]:
        return events.taken(size, within)  # type: ignore[no-any-return]

    async def complete(self, work: Awaitable[None]) -> None:
        self.log.append("complete")
        await work


def test_run_batches_decodes_each_batch_and_hands_only_good_records_on() -> None:
    loop, events = Loop(), Events([["e1", "poison", "e2"], ["e3"]])
    processed: list[list[str]] = []

    async def process(records: list[Incoming]) -> None:
        processed.append([r.event_id for r in records])

    asyncio.run(loop.run_batches(events, process, 200, 0.002))
    assert events.asked == [(200, 0.002)]
    assert processed == [["e1", "e2"], ["e3"]]
    assert loop.log == ["config", "complete", "dead-lettered", "complete"]
