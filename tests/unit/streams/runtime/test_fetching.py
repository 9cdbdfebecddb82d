"""The adaptive fetch wait: a long poll answered by the first byte after an empty fetch, a short
coalescing wait for more bytes after a fetch that brought records."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.consumer.fetcher import Fetcher

from streams.runtime import fetching
from streams.runtime.fetching import BUSY_MIN_BYTES, BUSY_WAIT_MS, IDLE_WAIT_MS, AdaptiveFetcher


def test_the_next_request_waits_by_what_the_last_one_brought(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([True, True, False, True])

    async def aiokafka_proc(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
        return next(answers)

    monkeypatch.setattr(Fetcher, "_proc_fetch_request", aiokafka_proc)
    fetcher = AdaptiveFetcher.__new__(AdaptiveFetcher)
    seen = []
    for _ in range(4):
        brought = asyncio.run(fetcher._proc_fetch_request(None, 1, None))
        seen.append((brought, fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms))
    busy, idle = (BUSY_MIN_BYTES, BUSY_WAIT_MS), (1, IDLE_WAIT_MS)
    assert seen == [(True, *busy), (True, *busy), (False, *idle), (True, *busy)]


def test_adapt_swaps_the_fetcher_the_consumer_builds_at_start() -> None:
    class Consumer:
        _fetcher: Any = None

        async def start(self) -> None:
            self._fetcher = Fetcher.__new__(Fetcher)
            self._fetcher._fetch_min_bytes, self._fetcher._fetch_max_wait_ms = 1, 1500

    consumer = Consumer()
    fetching.adapt(consumer)
    asyncio.run(consumer.start())
    assert type(consumer._fetcher) is AdaptiveFetcher
    assert (consumer._fetcher._fetch_min_bytes, consumer._fetcher._fetch_max_wait_ms) == (1, IDLE_WAIT_MS)
