"""A group-less reader that mirrors a whole topic into a process: read from the beginning up to the
start-up end offsets (then `loaded` is set), then follow it. No group, no commits: every process
holds the whole topic (config_updates, cog.sleep), and a restart reads it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from soma.clients import aiokafka_reader
from soma.settings import Settings

# Loading: look at the positions every half second (an empty topic is loaded at once). Following:
# an update ends the broker's long poll and our wait at once, so the timeouts only bound idle wake-ups
# (consumer_timeout_ms: aiokafka's fetch routine looks every 200 ms by default, though every change it
# acts on already wakes it).
LOAD_WAIT_MS = 500
FOLLOW_WAIT_MS = 10_000

Apply = Callable[[bytes | None, int], Awaitable[None]]


def _follow_sparsely(consumer: Any) -> None:
    """Long waits once loaded. Not from the start: the seek to the beginning and the reads up to the
    start-up end offsets wait on the fetcher's own timers (10 s each made a restarted stream start ~20 s later)."""
    fetcher = consumer._fetcher  # aiokafka's, built by start(); both are read on every loop and request
    fetcher._fetch_max_wait_ms = FOLLOW_WAIT_MS
    fetcher._fetcher_timeout = FOLLOW_WAIT_MS / 1000


async def mirror_topic(
    settings: Settings, client: str, physical: str, partitions: int, loaded: asyncio.Event, apply: Apply,
) -> None:
    """Run forever: `apply(value, offset)` for every record of `physical` in order per partition;
    `loaded` is set once the end offsets seen at start-up are read."""
    from aiokafka import TopicPartition

    consumer = aiokafka_reader(settings, client, isolation_level="read_committed",
                               fetch_max_wait_ms=LOAD_WAIT_MS, consumer_timeout_ms=LOAD_WAIT_MS)
    await consumer.start()
    try:
        tps = [TopicPartition(physical, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while True:
            loading = not loaded.is_set()
            batch = await consumer.getmany(timeout_ms=LOAD_WAIT_MS if loading else FOLLOW_WAIT_MS)
            for messages in batch.values():
                for message in messages:
                    await apply(message.value, message.offset)
            if not loaded.is_set() and all(await _positions_reached(consumer, ends)):
                loaded.set()
                _follow_sparsely(consumer)
    finally:
        await consumer.stop()


async def _positions_reached(consumer: Any, ends: Mapping[Any, int]) -> list[bool]:
    return [await consumer.position(tp) >= end for tp, end in ends.items()]
