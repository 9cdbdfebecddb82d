"""The asyncio form of `soma.consumer`: `async for event in consume_async(topics, group=...)`.

Same promise (at-least-once, batched commits after the handler, poison records as `event.error`),
same code: `ConsumerCore` runs on one thread of its own, one short poll per step, so the event loop
never blocks and every librdkafka call stays on a single thread (the rebalance callback, which
commits, runs inside that thread's poll). Why not aiokafka: it would be a second consumer
implementation to keep in step with `EventConsumer` (decoding, poison records, the librdkafka
security settings every other client of the platform uses); a thread costs one step's hop per poll.

    async with consume_async(["chat.messages"], group="billing") as events:
        async for event in events:
            await handle(event)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Unpack

from soma.consumer import COMMIT_EVERY, COMMIT_INTERVAL_MS, ConsumeOptions, ConsumerCore, check_options
from soma.contracts.events import ConsumedEvent
from soma.errors import ConsumeError


class AsyncConsumption:
    """What `consume_async` returns: `async for` over it (once), ideally inside `async with`."""

    def __init__(self, core_options: dict[str, Any]) -> None:
        self._options = core_options
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="soma-consume")
        self._core: ConsumerCore | None = None
        self._managed = self._started = False

    async def _run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def _open(self) -> ConsumerCore:
        if self._core is None:
            self._core = await self._run(lambda: ConsumerCore(**self._options))
        return self._core

    async def __aenter__(self) -> AsyncConsumption:
        self._managed = True
        await self._open()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self._close(handled_last=kind is None)

    def __aiter__(self) -> AsyncIterator[ConsumedEvent]:
        if self._started:
            raise ConsumeError("consume_async: a consumer is iterated once")
        self._started = True
        return self._events()

    async def _events(self) -> AsyncIterator[ConsumedEvent]:
        normal = False
        try:
            core = await self._open()
            while not core.finished and not core.closed:
                event = await self._run(core.step)
                if event is not None:
                    yield event
            normal = True
        finally:
            if not self._managed:
                await self._close(handled_last=normal)

    async def _close(self, handled_last: bool) -> None:
        try:
            if self._core is not None:
                await self._run(self._core.close, handled_last)
        finally:
            self._executor.shutdown(wait=False)

    async def wait_assigned(self, timeout_s: float = 60.0) -> bool:
        """`Consumption.wait_assigned`: join the group and fix where each partition starts."""
        core = await self._open()
        assigned: bool = await self._run(core.wait_assigned, timeout_s)
        return assigned

    async def commit(self) -> None:
        """Commit every handled event now."""
        await self._run((await self._open()).commit)

    async def committed(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The group's committed next offset per (topic, partition) (-1001: none)."""
        core = await self._open()
        result: dict[tuple[str, int], int] = await self._run(core.committed, partitions)
        return result

    async def close(self) -> None:
        """Commit what was handled, except the event in hand, and leave the group."""
        await self._close(handled_last=False)


def consume_async(topics: Sequence[str] | str, *, group: str, **options: Unpack[ConsumeOptions]) -> AsyncConsumption:
    """`soma.consume`'s options and promise, as an async iterator (the consumer starts on first use)."""
    check_options(group, options.get("commit_every", COMMIT_EVERY),
                  options.get("commit_interval_ms", COMMIT_INTERVAL_MS))  # bad options fail here, not later
    return AsyncConsumption({"topics": [topics] if isinstance(topics, str) else list(topics), "group": group,
                             **options})
