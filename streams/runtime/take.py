"""Batches of a Faust stream's events that cost nothing while the stream is idle.

Faust's `Stream.take_events(size, within)` waits for a full buffer with a `within` timeout in a
loop, so an idle stream wakes every `within` seconds (every 2 ms for a 2 ms window: ~8% of a core
doing nothing). `take_batches` waits for the first event of a batch without any timeout and opens
the `within` window only then. The rest is take_events': a processor of the stream fills the
buffer (the stream is drained passively), a full buffer blocks the stream until the batch was
consumed, and the events are acknowledged only when the agent asks for the next batch or leaves
the loop (by an exception or a cancellation), i.e. after the batch's work returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from streams.runtime.core import log


class Window:
    """The events of the batch being filled and when it is due (no clock of its own: `now` is passed)."""

    def __init__(self, size: int, within: float) -> None:
        if size < 1 or within < 0:
            raise ValueError(f"a batch needs size >= 1 and within >= 0, got {size}, {within}")
        self.size, self.within = size, within
        self.events: list[Any] = []
        self.due: float | None = None

    def add(self, event: Any, now: float) -> bool:
        """Buffer one event (the first opens the window); True when the batch is full."""
        if not self.events:
            self.due = now + self.within
        self.events.append(event)
        return self.full

    @property
    def full(self) -> bool:
        return len(self.events) >= self.size

    def wait_s(self, now: float) -> float | None:
        """How long to wait for more: None (no limit) while empty, 0 once full or due."""
        if self.due is None:
            return None
        return 0.0 if self.full else max(0.0, self.due - now)

    def take(self) -> list[Any]:
        taken, self.events, self.due = self.events, [], None
        return taken


def take_batches(stream: Any, size: int, within: float) -> AsyncIterator[list[Any]]:
    """The batches of a Faust `Stream` (a list of its events each), registered with the stream like
    take_events' generator so that stopping the stream closes it (and acknowledges what was taken)."""
    batches = _batches(stream, Window(size, within))
    stream._active_agens.add(batches)
    return batches


async def _batches(stream: Any, window: Window) -> AsyncGenerator[list[Any], None]:
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()  # the batch has its first event: the window is open
    full = asyncio.Event()
    consumed = asyncio.Event()  # a full batch was taken: the stream may go on
    consuming: asyncio.Future[None] | None = None  # set while a batch is out: the stream waits

    async def add_to_window(value: Any) -> Any:
        nonlocal consuming
        try:
            if consuming is not None:
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take_batches: the stream has no current event")
            is_full = window.add(event, loop.time())
            arrived.set()
            if is_full:
                full.set()
                consumed.clear()
                await stream.wait(consumed)  # never more than `size` events in hand (a full buffer blocks)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # as take_events: the stream crashes, the agent sees it stop
            log.exception("take_batches: cannot buffer an event: %r", exc)
            await stream.crash(exc)
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False  # we acknowledge, once the batch's work returned
    stream.add_processor(add_to_window)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            wait_s = window.wait_s(loop.time())
            if wait_s is None:
                arrived.clear()
                await stream.wait_for_stopped(arrived)  # idle: no timer at all
                continue
            if wait_s > 0:
                await stream.wait_for_stopped(full, timeout=wait_s)
            out = consuming = loop.create_future()
            taken = window.take()
            try:
                yield taken
            finally:
                for event in taken:
                    await stream.ack(event)
                if not out.done():
                    out.set_result(None)
                arrived.clear()
                full.clear()
                consumed.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_window)
