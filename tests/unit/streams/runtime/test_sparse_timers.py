"""The Faust pieces with sparse idle timers are the ones a stream app gets (a Faust upgrade that renames
what they override would leave the 200 ms / 1 s timers in place silently)."""

from __future__ import annotations

import asyncio

from mode.threads import QueueServiceThread

from streams.runtime.consumer_thread import (
    FETCH_MAX_WAIT_MS,
    FETCHER_POLL_MS,
    SparseApp,
    SparseConsumerThread,
    SparseTransport,
)
from streams.runtime.monitor import SparseMonitor


def test_the_app_consumes_through_the_sparse_consumer_thread() -> None:
    async def test() -> None:
        app = SparseApp("t-sparse", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False,
                        Monitor=SparseMonitor)
        assert isinstance(app.transport, SparseTransport)
        thread = app.consumer._thread
        assert isinstance(thread, SparseConsumerThread)
        consumer = thread._create_worker_consumer(app.transport)
        try:
            assert consumer._consumer_timeout == FETCHER_POLL_MS / 1000
            assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS  # not Faust's 1.5 s
        finally:
            await consumer.stop()
        assert isinstance(app.monitor, SparseMonitor)

    asyncio.run(test())


def test_the_overrides_replace_the_timers_by_name() -> None:
    tasks = SparseConsumerThread._tasks[SparseConsumerThread._get_class_id()]
    assert "_thread_keepalive" in tasks
    assert SparseConsumerThread._thread_keepalive is not QueueServiceThread._thread_keepalive
    assert SparseConsumerThread._keepalive2 is not QueueServiceThread._keepalive2
    assert SparseMonitor._tasks[SparseMonitor._get_class_id()] == {"_sampler"}
