"""Health of a stream process: its web views, the stall check, the DLQ depth and the assignment.

`/metrics` (Prometheus), `/healthz` (liveness), `/readyz` (readiness: Kafka and whatever else the
stream uses reachable, config loaded, partitions assigned, no stall; `/ready` is an alias).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from soma.clients import aiokafka_reader
from streams.runtime.core import StreamCore, log


async def dlq_depth(reader: Any, topic: str, partitions: int) -> int:
    """Records retained in the `dlq` topic (end - beginning offsets), asked of the broker by a started reader."""
    from aiokafka import TopicPartition

    tps = [TopicPartition(topic, p) for p in range(partitions)]
    first = await reader.beginning_offsets(tps)
    last = await reader.end_offsets(tps)
    return sum(max(0, last[tp] - first[tp]) for tp in tps)


class Health(StreamCore):
    _dlq_reader: Any = None  # the aiokafka reader of measure_dlq, started at its first measurement

    async def check_readiness(self) -> None:
        """The stall check and the lag gauges (an app timer)."""
        consumer = getattr(self.app, "consumer", None)
        if consumer is None:
            return
        try:
            tps = [tp for tp in consumer.assignment() if tp.topic in self.source_names]
            committed_map = getattr(consumer, "_committed_offset", {})
            ends = await self._broker_end_offsets(consumer, tps)
            positions = {tp: (int(committed_map.get(tp) or 0), int(ends.get(tp) or 0)) for tp in tps}
            committed = sum(c for c, _ in positions.values())
            end = sum(e for _, e in positions.values())
        except Exception as exc:  # metadata not there yet during a rebalance
            log.debug("%s: readiness probe skipped: %s", self.name, exc)
            return
        ready = self.stall.observe(time.monotonic(), committed, end)
        self.metrics.set_consumer_lag({
            (self.logical.get(tp.topic, tp.topic), tp.partition): max(0, e - c) for tp, (c, e) in positions.items()
        })
        self.metrics.ready.set(1 if ready else 0)
        if not ready:
            log.error("%s: stalled: committed offsets have not advanced for %.0fs while records wait",
                      self.name, self.settings.streams.stall_after_s)

    async def _broker_end_offsets(self, consumer: Any, tps: Sequence[Any]) -> Mapping[Any, int]:
        """End offsets asked of the broker (a stalled consumer's own high watermarks freeze); its cached
        ones when the broker does not answer in time."""
        if not tps:
            return {}
        try:
            return dict(await asyncio.wait_for(consumer.highwaters(*tps), timeout=self.settings.kafka.timeout_s))
        except Exception as exc:  # broker slow or unreachable: judge on what the consumer last saw
            log.debug("%s: end offsets from the broker unavailable (%s); using the consumer's", self.name, exc)
            return {tp: int(consumer.highwater(tp) or 0) for tp in tps}

    async def measure_dlq(self) -> None:
        """The DLQ depth gauge (an app timer). One reader is kept between measurements: it costs nothing
        while idle (no group, no assignment), unlike starting one (bootstrap, metadata) every time."""
        try:
            if self._dlq_reader is None:
                reader = aiokafka_reader(self.settings, "dlq-depth")
                await reader.start()
                self._dlq_reader = reader
            depth = await dlq_depth(self._dlq_reader, self.settings.topic_name("dlq"),
                                    self.catalog.topic("dlq").partitions)
        except Exception as exc:  # the broker unreachable: the gauge keeps its last value, a new reader next time
            log.debug("%s: DLQ depth not measured: %s", self.name, exc)
            await self._drop_dlq_reader()
            return
        self.metrics.dlq_depth.set(depth)

    async def _drop_dlq_reader(self) -> None:
        reader, self._dlq_reader = self._dlq_reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                await reader.stop()

    def add_views(self) -> None:
        stream_app = self

        @self.app.page("/metrics")
        class Metrics(View):
            async def get(self, request: Request) -> Response:
                body = generate_latest(stream_app.metrics.registry)
                return self.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

        @self.app.page("/healthz")
        class Healthz(View):
            async def get(self, request: Request) -> Response:
                return self.json({"service": f"stream-{stream_app.name}", "alive": True})

        async def readiness(view: View) -> Response:
            report = await stream_app.ready_report()
            body = report | {"stream": stream_app.name, "config_loaded": stream_app.config_loaded.is_set(),
                             "stalled": stream_app.stall.stalled}
            return view.json(body, status=200 if report["ready"] else 503)

        @self.app.page("/readyz")
        class Readyz(View):
            async def get(self, request: Request) -> Response:
                return await readiness(self)

        @self.app.page("/ready")  # the original name, kept as an alias
        class Ready(View):
            async def get(self, request: Request) -> Response:
                return await readiness(self)

    def _assignment(self) -> tuple[bool, str]:
        consumer = getattr(self.app, "consumer", None)
        try:
            assigned = [tp for tp in consumer.assignment() if tp.topic in self.source_names] if consumer else []
        except Exception as exc:  # no consumer thread yet, or mid-rebalance
            return False, f"no assignment yet: {type(exc).__name__}"
        if not assigned:
            return False, f"consumer group {self.app.conf.id} has no partition of the sources assigned (yet)"
        return True, f"{len(assigned)} source partition(s) assigned in group {self.app.conf.id}"

    async def ready_report(self) -> dict[str, Any]:
        """Dependencies (checked on a thread, cached briefly) plus this stream's own state."""
        report = await asyncio.to_thread(self.readiness.report)
        stall_s = self.settings.streams.stall_after_s
        loaded = self.config_loaded.is_set()
        checks = dict(report["checks"]) | {
            "config": {"ok": loaded, "detail": "config_updates mirrored" if loaded else "loading config_updates"},
            "assignment": dict(zip(("ok", "detail"), self._assignment(), strict=True)),
            "stall": {"ok": not self.stall.stalled,
                      "detail": f"committed offsets stuck for {stall_s:.0f}s with lag" if self.stall.stalled
                      else "committed offsets advancing or no lag"},
        }
        if self.mirrors_sleep:
            slept = self.sleep_loaded.is_set()
            checks["sleep"] = {"ok": slept, "detail": "cog.sleep mirrored" if slept else "loading cog.sleep"}
        return {"service": report["service"], "ready": all(c["ok"] for c in checks.values()), "checks": checks}
