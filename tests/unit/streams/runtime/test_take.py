"""take_batches: no timer while idle, the window opens at a batch's first event, a full batch blocks
the stream, events are acknowledged only once the agent asks for the next batch."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from streams.runtime.take import Window, take_batches


def test_window_waits_without_limit_while_empty_and_from_the_first_event_on() -> None:
    window = Window(3, 0.5)
    assert window.wait_s(10.0) is None
    assert window.add("a", 10.0) is False
    assert window.wait_s(10.2) == pytest.approx(0.3)
    assert window.add("b", 10.4) is False
    assert window.wait_s(10.4) == pytest.approx(0.1)  # the window opened at the first event, not the last
    assert window.wait_s(11.0) == 0.0
    assert window.add("c", 10.45) is True
    assert window.wait_s(10.45) == 0.0  # full: no waiting
    assert window.take() == ["a", "b", "c"]
    assert window.wait_s(20.0) is None


def test_window_rejects_an_empty_batch_size() -> None:
    with pytest.raises(ValueError, match="size"):
        Window(0, 0.1)


class FakeStream:
    """What take_batches uses of a Faust Stream; `feed` plays its passive drainer."""

    def __init__(self) -> None:
        self._active_agens: weakref.WeakSet[Any] = weakref.WeakSet()
        self._processors: list[Callable[[Any], Awaitable[Any]]] = []
        self.current_event: Any = None
        self.enable_acks = True
        self.channel = _nothing()
        self.stopped = asyncio.Event()
        self.acked: list[Any] = []
        self.waits = 0

    @property
    def should_stop(self) -> bool:
        return self.stopped.is_set()

    def add_processor(self, processor: Callable[[Any], Awaitable[Any]]) -> None:
        self._processors.append(processor)

    def _enable_passive(self, channel: Any) -> None:
        pass

    async def feed(self, event: Any) -> None:
        self.current_event = event
        for processor in self._processors:
            await processor(event)

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def wait_for_stopped(self, event: asyncio.Event, timeout: float | None = None) -> bool:
        self.waits += 1
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self.stopped.wait())]
        _, pending = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return self.should_stop

    async def ack(self, event: Any) -> bool:
        self.acked.append(event)
        return True

    async def crash(self, exc: BaseException) -> None:
        raise AssertionError(f"crashed: {exc!r}")


async def _nothing() -> AsyncIterator[Any]:
    return
    yield


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=10))


def test_an_idle_stream_waits_once_without_a_timer() -> None:
    async def test() -> None:
        stream = FakeStream()
        batches = take_batches(stream, 100, 0.002)
        assert stream.enable_acks is True
        first = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0.2)  # a hundred 2 ms windows
        assert stream.waits == 1
        assert stream.enable_acks is False
        await stream.feed("e1")
        assert await first == ["e1"]
        await batches.aclose()
        assert stream.acked == ["e1"]
        assert stream.enable_acks is True
        assert stream._processors == []

    run(test)


def test_the_window_opens_at_the_first_event_and_acks_follow_the_work() -> None:
    async def test() -> None:
        stream = FakeStream()
        batches = take_batches(stream, 100, 0.1)
        first = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0.15)  # longer than the window: nothing is due yet
        loop = asyncio.get_running_loop()
        began = loop.time()
        await stream.feed("e1")
        await stream.feed("e2")
        assert await first == ["e1", "e2"]
        assert loop.time() - began >= 0.09
        assert stream.acked == []  # the agent still works on them
        second = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0)
        assert stream.acked == ["e1", "e2"]
        await stream.feed("e3")
        assert await second == ["e3"]
        await batches.aclose()

    run(test)


def test_a_full_batch_is_handed_out_at_once_and_blocks_the_stream_until_taken() -> None:
    async def test() -> None:
        stream = FakeStream()
        batches = take_batches(stream, 2, 60.0)
        first = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0.01)  # the generator starts (adds its processor) at the first anext
        await stream.feed("e1")
        feeding = asyncio.ensure_future(stream.feed("e2"))  # fills the batch: the stream waits
        assert await first == ["e1", "e2"]
        third = asyncio.ensure_future(stream.feed("e3"))
        await asyncio.sleep(0.05)
        assert not third.done()  # no event joins a batch in hand
        second = asyncio.ensure_future(anext(batches))
        await asyncio.wait_for(asyncio.gather(feeding, third), timeout=1)
        fourth = asyncio.ensure_future(stream.feed("e4"))
        assert await second == ["e3", "e4"]
        assert stream.acked == ["e1", "e2"]
        await batches.aclose()
        assert stream.acked == ["e1", "e2", "e3", "e4"]
        await asyncio.wait_for(fourth, timeout=1)

    run(test)


def test_stopping_the_stream_ends_the_batches() -> None:
    async def test() -> None:
        stream = FakeStream()
        batches = take_batches(stream, 10, 0.01)

        async def drain() -> list[list[Any]]:
            return [batch async for batch in _each(batches)]

        draining = asyncio.ensure_future(drain())
        await asyncio.sleep(0.01)
        stream.stopped.set()
        assert await draining == []

    run(test)


async def _each(batches: AsyncIterator[list[Any]]) -> AsyncIterator[list[Any]]:
    async for batch in batches:
        yield batch
