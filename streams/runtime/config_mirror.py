"""The live config mirror: every stream process reads `config_updates` from the beginning into its
`LiveConfig` (a group-less reader, no commits) before it processes anything, then follows it.

A rejected update is logged, counted and audited on `outbox.audit`; hooks in `on_config` run
after every accepted one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

from soma.clients import aiokafka_reader
from soma.contracts.ids import derive_id
from soma.errors import SomaError
from soma.live_config import field_for
from streams.logic.output import Output
from streams.runtime.core import log
from streams.runtime.emit import Emitter

# Loading: look at the positions every half second (an empty topic is loaded at once). Following:
# an update ends the broker's long poll and our wait at once, so the timeouts only bound idle wake-ups
# (consumer_timeout_ms: aiokafka's fetch routine looks every 200 ms by default, though every change it
# acts on already wakes it).
LOAD_WAIT_MS = 500
FOLLOW_WAIT_MS = 10_000


def _follow_sparsely(consumer: Any) -> None:
    """Long waits once loaded. Not from the start: the seek to the beginning and the reads up to the
    start-up end offsets wait on the fetcher's own timers (10 s each made a restarted stream start ~20 s later)."""
    fetcher = consumer._fetcher  # aiokafka's, built by start(); both are read on every loop and request
    fetcher._fetch_max_wait_ms = FOLLOW_WAIT_MS
    fetcher._fetcher_timeout = FOLLOW_WAIT_MS / 1000


class ConfigMirror(Emitter):
    on_config: list[Callable[[], None]]

    def param(self, field: str, tenant: str | None = None) -> Any:
        return self.live.get(field, tenant)

    async def wait_for_config(self) -> None:
        if not self.config_loaded.is_set():
            try:
                await asyncio.wait_for(self.config_loaded.wait(), timeout=self.settings.kafka.timeout_s * 3)
            except TimeoutError:
                log.warning("%s: config_updates not loaded in time; starting with what is known", self.name)

    async def mirror_config(self) -> None:
        """The app task that keeps the mirror: `config_loaded` is set once the start-up end offsets are read."""
        from aiokafka import TopicPartition

        physical = self.settings.topic_name("config_updates")
        partitions = self.catalog.topic("config_updates").partitions
        consumer = aiokafka_reader(self.settings, f"{self.name}-config", isolation_level="read_committed",
                                   fetch_max_wait_ms=LOAD_WAIT_MS, consumer_timeout_ms=LOAD_WAIT_MS)
        await consumer.start()
        try:
            tps = [TopicPartition(physical, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                loading = not self.config_loaded.is_set()
                batch = await consumer.getmany(timeout_ms=LOAD_WAIT_MS if loading else FOLLOW_WAIT_MS)
                for messages in batch.values():
                    for message in messages:
                        await self.apply_config(message.value, message.offset)
                if not self.config_loaded.is_set() and all(await _positions_reached(consumer, ends)):
                    self.config_loaded.set()
                    _follow_sparsely(consumer)
        finally:
            await consumer.stop()

    async def apply_config(self, raw: bytes | None, offset: int) -> None:
        if not raw:
            return  # a tombstone
        try:
            update = self.codec.decode("config_updates", raw)
            decision = self.live.apply(update)
        except Exception as exc:  # one bad update never stops the mirror (and with it the stream)
            log.warning("%s: unusable config update at offset %d: %s: %s", self.name, offset, type(exc).__name__,
                        exc)
            self.metrics.config_rejected.labels("?").inc()
            return
        if decision.accepted:
            log.info("%s: config %s (tenant %s) = %r, version %s", self.name, decision.name,
                     decision.scope or "*", update.get("value"), update.get("version"))
            self.metrics.config_applied.inc()
            for hook in self.on_config:
                hook()
            return
        log.warning("%s: rejected config update %s (tenant %s, version %s): %s", self.name, decision.name,
                    decision.scope or "*", update.get("version"), decision.reason)
        # bounded: a name that is not a live setting is counted as "other"
        self.metrics.config_rejected.labels(decision.name if field_for(decision.name) else "other").inc()
        details = {"name": decision.name, "version": update.get("version"), "reason": decision.reason,
                   "update_event_id": update.get("event_id"), "stream": self.name}
        tenant = decision.scope or "_global"
        try:
            await self.emit([Output("outbox.audit", {
                "event_id": derive_id(str(update.get("event_id")), f"config-rejected:{self.name}"),
                "actor": f"streams.{self.name}", "action": "config.rejected", "target_tenant": tenant,
                "details_json": json.dumps(details, sort_keys=True, default=str), "outcome": "rejected",
            }, tenant)])
        except SomaError as exc:
            log.warning("%s: could not audit the rejection: %s", self.name, exc)


async def _positions_reached(consumer: Any, ends: Mapping[Any, int]) -> list[bool]:
    return [await consumer.position(tp) >= end for tp, end in ends.items()]
