"""Faust's Kafka transport: the consumer's long poll bounded, and no sub-second idle timers.

The long poll: aiokafka keeps one fetch request in flight per broker, and leaves out of it every
partition whose fetched records are not consumed yet; the broker holds the request until one of
ITS partitions has new data or `fetch_max_wait_ms` passes. So a stream whose busy partitions were
left out waits for the long poll of its quiet ones (the worker's tool.results, any partition
without traffic) before it can fetch the busy ones again: up to the 1.5 s Faust hard-codes
(faust/transport/drivers/aiokafka.py, `_create_worker_consumer`), paid again and again at a steady
rate. Here it is `FETCH_MAX_WAIT_MS`, at the price of two empty fetches a second while idle.

faust-streaming runs its aiokafka consumer in a mode `ServiceThread`; three timers there do no
work while the stream is idle:

- aiokafka's fetch routine wakes every `consumer_timeout_ms` (200 ms) to look for changes, though
  every change it acts on (a fetch answered, records consumed, a seek or offset reset, a resumed
  partition, an assignment revoked, stale metadata) resolves a future it already waits on: here
  it looks every `FETCHER_POLL_MS` (5 wake-ups a second fewer).
- mode's `_keepalive2`, in the stream's loop (every 1.1 s: note the time, log an error when its
  own loop lagged over 3 s, post an empty coroutine to itself), and `_thread_keepalive`, in the
  thread's loop (an empty itertimer every second "so the loop runs something at all times":
  every call into the thread already wakes its loop thread-safely). Both tick every
  `KEEPALIVE_S` here, the lag check scaled to it (~0.1% of a core per process, measured).
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service

FETCH_MAX_WAIT_MS = 500  # aiokafka's own default
FETCHER_POLL_MS = 5_000
KEEPALIVE_S = 10.0
LAG_ALLOWED_S = 1.9  # mode's: 3 s since the last keep-alive that slept 1.1 s


class SparseConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):  # type: ignore[misc]  # faust is untyped
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Options Faust does not pass (or hard-codes); both are read when the consumer starts its fetcher.
        consumer._consumer_timeout = FETCHER_POLL_MS / 1000
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    async def _keepalive2(self) -> None:  # replaces mode's (started by ServiceThread.start)
        while not self.should_stop:
            await self.sleep(KEEPALIVE_S)
            if self.last_wakeup_at and monotonic() - self.last_wakeup_at > KEEPALIVE_S + LAG_ALLOWED_S:
                self.log.error("Thread keepalive is not responding...")
            await asyncio.sleep(0)
            await self._wakeup_timer_in_thread()

    @Service.task  # replaces QueueServiceThread._thread_keepalive (mode finds tasks by attribute name)
    async def _thread_keepalive(self) -> None:
        async for _ in self.itertimer(KEEPALIVE_S, name=f"_thread_keepalive-{self.label}"):
            pass


class SparseConsumerService(faust_aiokafka.Consumer):  # type: ignore[misc]  # Faust's consumer, not a client
    def _new_consumer_thread(self) -> SparseConsumerThread:
        return SparseConsumerThread(self, loop=self.loop, beacon=self.beacon)


class SparseTransport(faust_aiokafka.Transport):  # type: ignore[misc]
    Consumer = SparseConsumerService


class SparseApp(faust.App):  # type: ignore[misc]
    """A `faust.App` whose consumer transport is `SparseTransport` (kafka:// brokers only)."""

    async def on_first_start(self) -> None:
        # The data directory sits under the state dir (streams/app.py); Faust creates only its last level.
        self.conf.datadir.parent.mkdir(parents=True, exist_ok=True)
        await super().on_first_start()

    def _new_transport(self) -> Any:
        return SparseTransport(self.conf.broker_consumer, self)
