"""The streams' consumer long poll: at most `FETCH_MAX_WAIT_MS`, not the 1.5 s Faust hard-codes.

aiokafka keeps one fetch request in flight per broker, and leaves out of it every partition whose
fetched records are not consumed yet; the broker holds the request until one of ITS partitions
has new data or `fetch_max_wait_ms` passes. So a stream whose busy partitions were left out
(records still buffered when the request went) waits for the long poll of its quiet ones (the
worker's tool.results, any partition without traffic) before it can fetch the busy ones again:
up to 1.5 s with Faust's value (faust/transport/drivers/aiokafka.py, `_create_worker_consumer`),
paid again and again at a steady rate: the worker hop's p99 of seconds while its CPU idled.
`install()` (called once by `streams.app`) sets the wait of every stream consumer Faust creates.
Shorter costs idle CPU: one empty fetch per wait per stream process while nothing arrives.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver

FETCH_MAX_WAIT_MS = 500  # aiokafka's own default: a stall behind a quiet partition at most this; 2 empty fetches/s idle


def install(wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Make Faust's worker consumers long-poll at most `wait_ms` (idempotent)."""
    original = driver.AIOKafkaConsumerThread._create_worker_consumer
    if getattr(original, "soma_fetch_wait_ms", None) is not None:
        original = original.soma_original

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = wait_ms  # read when the consumer starts its fetcher
        return consumer

    create.soma_fetch_wait_ms = wait_ms  # type: ignore[attr-defined]
    create.soma_original = original  # type: ignore[attr-defined]
    driver.AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]
