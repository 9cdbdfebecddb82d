"""The relay's live settings: `config_updates` mirrored into a `LiveConfig` on a thread of its own.

A group-less reader (assigned partitions, from the beginning, no commits), like the streams' config
mirror, so the relay sees the same tenant-scoped values (`ENABLE_SLEEP`, `SLEEP_POLICY`) every stream
applies, and its own (`RELAY_TENANT_RATE`, kept as `tenant_rates` and `global_rate`). The relay loop
only reads; until the start-up end offsets are read (`loaded`) it sees what is known so far (the
settings' defaults at first). Long broker waits: an idle relay wakes for it a few times a minute.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from soma.clients import kafka_consumer
from soma.contracts.catalog import catalog_for
from soma.contracts.codec import Codec
from soma.errors import SomaError, first_line
from soma.live_config import LiveConfig
from soma.settings import Settings

log = logging.getLogger("outbox.relay")

POLL_S = 1.0  # longest the thread goes without looking at the stop flag
FETCH_WAIT_MS = 5000  # the broker holds an empty fetch this long (idle wake-ups)


class LiveMirror:
    """`config_updates` from the beginning, followed; `get(field, tenant)` is the effective value."""

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings = settings
        self.live = LiveConfig(settings.streams.live)
        self.loaded = threading.Event()
        self.applied = 0
        self.rejected = 0
        # RELAY_TENANT_RATE (outbox.relay.rate.LiveRates): replaced whole on each update, read without the lock.
        self.tenant_rates: dict[str, float] = {}
        self.global_rate = float(settings.streams.live.relay_tenant_rate)
        self._stop = stop
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def get(self, field: str, tenant: str | None = None) -> Any:
        with self._lock:
            return self.live.get(field, tenant)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="relay-live-config", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            codec = Codec(catalog_for(self.settings), self.settings)
            consumer = kafka_consumer(self.settings, f"{self.settings.kafka.client_id}-relay-config", **{
                "enable.auto.commit": False, "fetch.wait.max.ms": FETCH_WAIT_MS,
            })
        except Exception as exc:  # never stops the relay: it goes on with the settings' defaults
            log.error("relay: live settings not mirrored: %s", first_line(exc))
            return
        try:
            self._follow(consumer, codec)
        except Exception as exc:  # e.g. no config_updates topic: the settings' defaults apply
            log.warning("relay: live settings mirror stopped (the settings' defaults apply): %s", first_line(exc))
        finally:
            consumer.close()

    def _follow(self, consumer: Consumer, codec: Codec) -> None:
        physical = self.settings.topic_name("config_updates")
        ends: dict[int, int] = {}
        partitions = codec.catalog.topic("config_updates").partitions
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(physical, p),
                                                       timeout=self.settings.kafka.timeout_s)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(physical, p, OFFSET_BEGINNING) for p in range(partitions)])
        self._check_loaded(ends)
        while not self._stop.is_set():
            msg = consumer.poll(POLL_S)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("relay: reading config_updates: %s", error.str())
                continue
            if msg.value():
                self._apply(codec, msg.value() or b"", msg.offset() or 0)
            partition = msg.partition() or 0
            if (msg.offset() or 0) + 1 >= ends.get(partition, 0):
                ends.pop(partition, None)
                self._check_loaded(ends)

    def _rates(self) -> None:
        """The live rates after an update (the lock held)."""
        self.tenant_rates = {
            str(scope): float(value) for (scope, field), (_, value) in self.live.overrides().items()
            if field == "relay_tenant_rate" and scope is not None and value is not None and value >= 0
        }
        self.global_rate = float(self.live.get("relay_tenant_rate"))

    def _check_loaded(self, ends: dict[int, int]) -> None:
        if not ends and not self.loaded.is_set():
            self.loaded.set()
            log.info("relay: live settings loaded (%d update(s) applied, %d rejected)", self.applied, self.rejected)

    def _apply(self, codec: Codec, raw: bytes, offset: int) -> None:
        try:
            update = codec.decode("config_updates", raw)
            with self._lock:
                decision = self.live.apply(update)
                if decision.accepted:
                    self._rates()
        except (SomaError, ValueError, TypeError) as exc:  # one bad record never stops the mirror
            self.rejected += 1
            log.warning("relay: unusable config update at offset %d: %s", offset, first_line(exc))
            return
        if decision.accepted:
            self.applied += 1
            if self.loaded.is_set():
                log.info("relay: config %s (tenant %s) = %r", decision.name, decision.scope or "*", update.get("value"))
        else:
            self.rejected += 1
