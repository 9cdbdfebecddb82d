"""The Faust app factory: one `StreamApp` per stream process, configured only from `Settings`.

- broker, app id (prefixed like the topics), `memory://` table store (tables recover from their
  changelog topics), partitions and replication from the catalog, a web port per stream
  (`/metrics` Prometheus, `/healthz` liveness, `/readyz` readiness: Kafka and whatever else the
  stream uses reachable, config loaded, partitions assigned, no stall; `/ready` is an alias);
- source topics are read as raw bytes and decoded with the shared codec, so handlers receive
  decoded Avro records; an undecodable record goes to the `dlq` topic with the error, its
  source position, key, headers and original bytes, and the stream continues;
- outputs are built with `soma.events.prepare` (the one record builder) and their delivery is
  awaited before the handler writes its state: state that records an input id is never ahead
  of that input's outputs, which is what makes a redelivery safe to skip;
- every process mirrors `config_updates` into a `LiveConfig` before it processes anything.

Agent concurrency is 1 (Faust's default); the app scales by partitions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import faust
from faust.web import Request, Response, View
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import HEADER_TENANT, HEADER_TRACEPARENT, prepare
from soma.contracts.ids import derive_id
from soma.contracts.partition import partition_for
from soma.errors import EventValidationError, SomaError
from soma.live_config import LiveConfig
from soma.observability import telemetry
from soma.observability.logs import log_context, logging_dict_config
from soma.observability.readiness import Readiness
from soma.ops.supervisor.spec import stream_topology
from soma.settings import Settings, load_settings
from streams.errors import InvalidInput
from streams.logic.stall import StallDetector
from streams.runtime.auth import aiokafka_security, faust_credentials
from streams.runtime.dlq_depth import dlq_depth
from streams.runtime.faust_worker import StreamWorker
from streams.runtime.metrics import StreamMetrics

log = logging.getLogger("streams")
NO_SPAN: AbstractContextManager[None] = nullcontext()  # reusable: what `processing` is with tracing off


@dataclass(frozen=True)
class Incoming:
    """A decoded input record and where it came from."""

    topic: str  # catalog name
    value: dict[str, Any]
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    headers: dict[str, bytes]

    @property
    def tenant(self) -> str:
        return str(self.value["tenant_id"])

    @property
    def event_id(self) -> str:
        return str(self.value["event_id"])


@dataclass(frozen=True)
class Out:
    topic: str
    event: Mapping[str, Any]
    tenant: str


def _headers(raw: Any) -> dict[str, bytes]:
    items = raw.items() if isinstance(raw, Mapping) else (raw or [])
    return {str(k): (v if isinstance(v, bytes) else str(v or "").encode()) for k, v in items}


class StreamApp:
    def __init__(
        self, name: str, sources: Sequence[str], settings: Settings | None = None, *,
        needs: Sequence[str] = (), tables: Sequence[str] = (),
    ) -> None:
        """`needs`/`tables`: what `/readyz` checks besides Kafka (e.g. "redis", "postgresql" and its tables)."""
        self.name = name
        self.settings = settings or load_settings()
        self.catalog = load_catalog()
        self.codec = Codec(self.catalog, self.settings)
        self.live = LiveConfig(self.settings)
        self.metrics = StreamMetrics(name)
        self.config_loaded = asyncio.Event()
        self.stall = StallDetector(self.settings.streams_stall_after_s)
        self.on_config: list[Callable[[], None]] = []
        self.tracer = telemetry.setup(self.settings, name)  # None: tracing off (SOMA_OTEL_TRACES_EXPORTER)
        s = self.settings
        self.readiness = Readiness(s, f"stream-{name}", ("kafka", *needs), tables=tables)
        first = self.catalog.topic(sources[0])
        self.app = faust.App(
            f"{s.topic_prefix}soma-{name}",
            broker=[f"kafka://{host}:{port}" for host, port in s.kafka_servers],
            broker_client_id=f"{s.kafka_client_id}-{name}",
            broker_credentials=faust_credentials(s),
            store="memory://",
            autodiscover=False,
            topic_partitions=first.partitions,
            topic_replication_factor=first.replication_factor,
            topic_allow_declare=True,
            processing_guarantee="at_least_once",
            producer_acks=-1,
            consumer_auto_offset_reset="earliest",
            table_standby_replicas=0,
            broker_session_timeout=s.streams_session_timeout_s,
            broker_heartbeat_interval=min(3.0, s.streams_session_timeout_s / 3),
            web_host=s.streams_web_host,
            web_port=stream_topology(name).web_port(s),
            web_transport="tcp://",
            logging_config=logging_dict_config(s, f"stream-{name}"),  # JSON lines once the worker starts
            Worker=StreamWorker,
        )
        self._logical = {s.topic_name(t): t for t in self.catalog.topics}
        self.sources = self.app.topic(
            *[s.topic_name(t) for t in sources],
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        )
        self._source_names = {s.topic_name(t) for t in sources}
        self.app.task(self._mirror_config)
        if self.tracer is not None:  # export batched spans before a slow shutdown can end in SIGKILL
            self.app.on_before_shutdown.connect(self._flush_spans)
        self.app.timer(interval=5.0)(self._check_readiness)
        self.app.timer(interval=15.0)(self._measure_dlq)
        self._add_views()

    @staticmethod
    async def _flush_spans(sender: Any, **kwargs: Any) -> None:
        await asyncio.to_thread(telemetry.flush, 5.0)

    # --- tables -----------------------------------------------------------------------------
    async def write_state(self, table: Any, partition: int, changes: Mapping[str, Any]) -> None:
        """Write table keys (local store + changelog) and wait until the broker has the changelog.

        Faust's own `table[key] = value` only buffers the changelog record, and its commit-time
        flush gives up after 0.1 s without progress, so an offset can be committed before the
        state that recorded it is durable; a SIGKILL then loses that state while its input is
        not redelivered (the next input applies on top of stale state). Awaiting the changelog
        here, before the handler returns and the input is acked, closes that window.
        """
        pending = []
        for key, value in changes.items():
            table.data[key] = value
            # Straight to the producer (`force` skips Faust's attach-to-offset deferral), not via
            # the send_soon buffer: the returned future resolves on the broker's ack.
            pending.append(await table.changelog_topic.send(
                key=key, value=value, partition=partition, key_serializer=table.key_serializer,
                value_serializer=table.value_serializer, force=True,
            ))
        await self.acknowledged(pending, "state changelog records")

    async def acknowledged(self, futures: Sequence[Awaitable[Any]], what: str) -> None:
        """Wait for every delivery; say so in the log while some take longer than a broker round trip should."""
        waiting = {asyncio.ensure_future(f) for f in futures}
        started = time.monotonic()
        while waiting:
            done, waiting = await asyncio.wait(waiting, timeout=self.settings.kafka_timeout_s)
            for future in done:
                future.result()  # a failed delivery raises here
            if waiting:
                log.warning("%s: %d %s not acknowledged after %.0fs; still waiting", self.name, len(waiting), what,
                            time.monotonic() - started)

    def table(self, name: str) -> Any:
        """A JSON-valued Faust table co-partitioned with the sources (changelog-backed)."""
        return self.app.Table(name, default=None, partitions=self.sources_partitions)

    @property
    def sources_partitions(self) -> int:
        return int(self.app.conf.topic_partitions)

    # --- input ------------------------------------------------------------------------------
    async def wait_for_config(self) -> None:
        if not self.config_loaded.is_set():
            try:
                await asyncio.wait_for(self.config_loaded.wait(), timeout=self.settings.kafka_timeout_s * 3)
            except TimeoutError:
                log.warning("%s: config_updates not loaded in time; starting with what is known", self.name)

    async def decode(self, event: Any) -> Incoming | None:
        """The decoded record of a Faust event, or None after dead-lettering an undecodable one."""
        message = event.message
        topic = self._logical.get(message.topic, message.topic)
        raw = message.value if isinstance(message.value, bytes) else b""
        key = message.key if isinstance(message.key, bytes) else None
        self.metrics.processed.labels(topic, _headers(message.headers).get(HEADER_TENANT, b"unknown").decode()).inc()
        try:
            value = self.codec.decode(topic, raw)
        except SomaError as exc:
            await self.dead_letter(topic, message.partition, message.offset, key, raw,
                                   _headers(message.headers), "decode", str(exc))
            return None
        return Incoming(topic, value, message.partition, message.offset, key, raw, _headers(message.headers))

    async def records(self, stream: Any) -> AsyncIterator[Incoming]:
        """Decoded records of the stream; undecodable ones are dead-lettered and skipped."""
        await self.wait_for_config()
        async for event in stream.events():
            record = await self.decode(event)
            if record is not None:
                yield record

    async def handle_safely(self, record: Incoming, handle: Callable[[Incoming], Awaitable[None]]) -> None:
        """Run the handler; a record that fails for its own reasons is dead-lettered (the stream goes on)."""
        with self.log_context(record):
            try:
                await handle(record)
            except (InvalidInput, EventValidationError, KeyError, TypeError, ValueError) as exc:
                await self.dead_letter(record.topic, record.partition, record.offset, record.key, record.raw,
                                       record.headers, "processing", f"{type(exc).__name__}: {exc}")

    @staticmethod
    def log_context(record: Incoming) -> Any:
        """Log lines inside carry the record's tenant, event id and position (never its payload)."""
        return log_context(tenant=record.value.get("tenant_id"), event_id=record.value.get("event_id"),
                           topic=record.topic, partition=record.partition, offset=record.offset)

    async def handle_traced(self, record: Incoming, handle: Callable[[Incoming], Awaitable[None]]) -> None:
        """`handle_safely` inside the record's `process` span (when tracing is on)."""
        with self.processing([record]):
            await self.handle_safely(record, handle)

    async def run(self, stream: Any, handle: Callable[[Incoming], Awaitable[None]]) -> None:
        """The body of every one-at-a-time agent: decode, handle, dead-letter, next."""
        async for record in self.records(stream):
            await self.complete(self.handle_traced(record, handle))

    async def complete(self, work: Awaitable[None]) -> None:
        """Run the work on the events in hand to its end, whatever happens to the agent meanwhile.

        Faust acknowledges the events it handed out (one, or a `take_events` batch) when the agent
        leaves them, even by an exception or a cancellation, and its shutdown commits what was
        acknowledged: a SIGTERM or a failure mid-batch would commit offsets past work never done.
        So a cancellation (shutdown) waits for the work to finish first, and a failure exits the
        process at once, before anything is committed: the supervisor restarts it and the events
        are delivered again (outputs and state are idempotent by event id).
        """
        task = asyncio.ensure_future(work)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                log.info("%s: stopping: finishing the events in hand first", self.name)
                try:
                    await asyncio.wait_for(asyncio.shield(task), timeout=self.settings.kafka_timeout_s * 3)
                except BaseException as exc:
                    self._exit_uncommitted(f"events in hand unfinished at shutdown ({type(exc).__name__})")
            raise
        except Exception as exc:
            log.critical("%s: processing failed: %s", self.name, exc, exc_info=True)
            self._exit_uncommitted(f"{type(exc).__name__}: {exc}")

    def _exit_uncommitted(self, why: str) -> None:
        log.critical("%s: exiting without committing (%s); the events in hand will be delivered again",
                     self.name, why)
        logging.shutdown()
        os._exit(70)  # not SystemExit: Faust's shutdown would commit the acknowledged offsets

    def processing(self, records: Sequence[Incoming]) -> AbstractContextManager[Any]:
        """The current `process` span of one record (its parent: the record's traceparent) or of a batch
        (linked to every record's context; parented like a single record when the batch holds one)."""
        if self.tracer is None:
            return NO_SPAN
        return telemetry.current_span(
            self.tracer, f"process {records[0].topic}" if records else f"process {self.name}",
            kind=SpanKind.CONSUMER,
            parent=telemetry.extract(records[0].headers) if len(records) == 1 else None,
            links=telemetry.links_of([telemetry.extract(r.headers) for r in records]) if len(records) > 1 else (),
            attributes=self._process_attributes(records),
        )

    def _process_attributes(self, records: Sequence[Incoming]) -> dict[str, Any]:
        group = str(self.app.conf.id)
        if len(records) != 1:
            return {"messaging.system": "kafka", "messaging.operation.type": "process",
                    "messaging.operation.name": "process", "messaging.consumer.group.name": group,
                    "messaging.batch.message_count": len(records), "soma.stream": self.name}
        record = records[0]
        session = record.value.get("session_id")
        return telemetry.messaging_attributes(
            "process", self.settings.topic_name(record.topic), partition=record.partition, offset=record.offset,
            key=record.key, group=group, tenant=record.tenant, event_id=record.event_id,
            session_id=str(session) if session is not None else None,
        ) | {"soma.stream": self.name}

    # --- output -----------------------------------------------------------------------------
    async def send(self, outputs: Sequence[Out], cause: Incoming | None = None) -> list[Awaitable[Any]]:
        """Hand outputs to the producer (shared record builder); returns their delivery futures."""
        pending = []
        extra: dict[str, str] = {}
        if self.tracer is None and cause is not None and HEADER_TRACEPARENT in cause.headers:
            extra[HEADER_TRACEPARENT] = cause.headers[HEADER_TRACEPARENT].decode(errors="replace")
        for out in outputs:
            span = None
            if self.tracer is not None:  # a publish span, child of the current (process) span
                span = self.tracer.start_span(f"publish {out.topic}", kind=SpanKind.PRODUCER)
                extra = telemetry.inject(span)
            try:
                record = prepare(self.catalog, self.codec, self.settings, out.topic, dict(out.event),
                                 tenant=out.tenant, headers=extra)
            except SomaError as exc:
                if span is not None:
                    telemetry.fail(span, exc)
                    span.end()
                raise
            partitions = self.catalog.topic(out.topic).partitions
            partition = partition_for(record.key, partitions)
            future = await self.app.producer.send(
                record.physical_topic, record.key, record.value, partition, None, record.headers,
            )
            if span is not None:
                if span.is_recording():
                    session = record.event.get("session_id")
                    span.set_attributes(telemetry.messaging_attributes(
                        "publish", record.physical_topic, partition=partition, key=record.key, tenant=out.tenant,
                        event_id=str(record.event["event_id"]), session_id=str(session) if session else None,
                    ))
                telemetry.end_on_delivery(span, future)  # ends when the broker acknowledges, not at enqueue
            pending.append(future)
            self.metrics.emitted.labels(out.topic, out.tenant).inc()
        return pending

    async def emit(self, outputs: Sequence[Out], cause: Incoming | None = None) -> None:
        """Send outputs and wait until the broker has them all."""
        for out, future in zip(outputs, await self.send(outputs, cause), strict=True):
            try:
                await future
            except Exception:
                self.metrics.publish_failures.labels(out.topic).inc()
                raise

    async def dead_letter(
        self, topic: str, partition: int, offset: int, key: bytes | None, raw: bytes,
        headers: Mapping[str, bytes], error_type: str, error: str,
    ) -> None:
        tenant = headers.get(HEADER_TENANT, b"").decode(errors="replace") or "unknown"
        with log_context(tenant=tenant):
            log.warning("%s: dead-lettering %s[%d]@%d: %s", self.name, topic, partition, offset, error)
        self.metrics.dead_letters.labels(error_type, tenant).inc()
        await self.emit([Out("dlq", {
            "event_id": derive_id(f"{self.settings.topic_name(topic)}/{partition}/{offset}", f"dlq:{self.name}"),
            "stream": self.name, "source_topic": topic, "source_partition": partition, "source_offset": offset,
            "error_type": error_type, "error": error[:2000], "original_key": key, "original_value": raw,
            "headers": dict(headers),
        }, tenant)])

    # --- live config --------------------------------------------------------------------------
    async def _mirror_config(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        physical = self.settings.topic_name("config_updates")
        partitions = self.catalog.topic("config_updates").partitions
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
            client_id=f"{self.settings.kafka_client_id}-{self.name}-config", isolation_level="read_committed",
            **aiokafka_security(self.settings),
        )
        await consumer.start()
        try:
            tps = [TopicPartition(physical, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    for message in messages:
                        await self._apply_config(message.value, message.offset)
                if not self.config_loaded.is_set() and all(await self._positions_reached(consumer, ends)):
                    self.config_loaded.set()
        finally:
            await consumer.stop()

    @staticmethod
    async def _positions_reached(consumer: Any, ends: Mapping[Any, int]) -> list[bool]:
        return [await consumer.position(tp) >= end for tp, end in ends.items()]

    async def _apply_config(self, raw: bytes | None, offset: int) -> None:
        if not raw:
            return  # a tombstone
        try:
            update = self.codec.decode("config_updates", raw)
        except SomaError as exc:
            log.warning("%s: undecodable config update at offset %d: %s", self.name, offset, exc)
            self.metrics.config_rejected.labels("?").inc()
            return
        decision = self.live.apply(update)
        if decision.accepted:
            log.info("%s: config %s (tenant %s) = %r, version %s", self.name, decision.name,
                     decision.scope or "*", update.get("value"), update.get("version"))
            self.metrics.config_applied.inc()
            for hook in self.on_config:
                hook()
            return
        log.warning("%s: rejected config update %s (tenant %s, version %s): %s", self.name, decision.name,
                    decision.scope or "*", update.get("version"), decision.reason)
        self.metrics.config_rejected.labels(decision.name).inc()
        details = {"name": decision.name, "version": update.get("version"), "reason": decision.reason,
                   "update_event_id": update.get("event_id"), "stream": self.name}
        tenant = decision.scope or "_global"
        try:
            await self.emit([Out("outbox.audit", {
                "event_id": derive_id(str(update.get("event_id")), f"config-rejected:{self.name}"),
                "actor": f"streams.{self.name}", "action": "config.rejected", "target_tenant": tenant,
                "details_json": json.dumps(details, sort_keys=True, default=str), "outcome": "rejected",
            }, tenant)])
        except SomaError as exc:
            log.warning("%s: could not audit the rejection: %s", self.name, exc)

    def param(self, field: str, tenant: str | None = None) -> Any:
        return self.live.get(field, tenant)

    # --- readiness and metrics ------------------------------------------------------------------
    async def _check_readiness(self) -> None:
        consumer = getattr(self.app, "consumer", None)
        if consumer is None:
            return
        try:
            tps = [tp for tp in consumer.assignment() if tp.topic in self._source_names]
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
            (self._logical.get(tp.topic, tp.topic), tp.partition): max(0, e - c) for tp, (c, e) in positions.items()
        })
        self.metrics.ready.set(1 if ready else 0)
        if not ready:
            log.error("%s: stalled: committed offsets have not advanced for %.0fs while records wait",
                      self.name, self.settings.streams_stall_after_s)

    async def _broker_end_offsets(self, consumer: Any, tps: Sequence[Any]) -> Mapping[Any, int]:
        """End offsets asked of the broker (a stalled consumer's own high watermarks freeze); its cached
        ones when the broker does not answer in time."""
        if not tps:
            return {}
        try:
            return dict(await asyncio.wait_for(consumer.highwaters(*tps), timeout=self.settings.kafka_timeout_s))
        except Exception as exc:  # broker slow or unreachable: judge on what the consumer last saw
            log.debug("%s: end offsets from the broker unavailable (%s); using the consumer's", self.name, exc)
            return {tp: int(consumer.highwater(tp) or 0) for tp in tps}

    async def _measure_dlq(self) -> None:
        try:
            depth = await dlq_depth(self.settings, self.catalog.topic("dlq").partitions)
        except Exception as exc:  # the broker unreachable: the gauge keeps its last value
            log.debug("%s: DLQ depth not measured: %s", self.name, exc)
            return
        self.metrics.dlq_depth.set(depth)

    def _add_views(self) -> None:
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
            assigned = [tp for tp in consumer.assignment() if tp.topic in self._source_names] if consumer else []
        except Exception as exc:  # no consumer thread yet, or mid-rebalance
            return False, f"no assignment yet: {type(exc).__name__}"
        if not assigned:
            return False, f"consumer group {self.app.conf.id} has no partition of the sources assigned (yet)"
        return True, f"{len(assigned)} source partition(s) assigned in group {self.app.conf.id}"

    async def ready_report(self) -> dict[str, Any]:
        """Dependencies (checked on a thread, cached briefly) plus this stream's own state."""
        report = await asyncio.to_thread(self.readiness.report)
        stall_s = self.settings.streams_stall_after_s
        loaded = self.config_loaded.is_set()
        checks = dict(report["checks"]) | {
            "config": {"ok": loaded, "detail": "config_updates mirrored" if loaded else "loading config_updates"},
            "assignment": dict(zip(("ok", "detail"), self._assignment(), strict=True)),
            "stall": {"ok": not self.stall.stalled,
                      "detail": f"committed offsets stuck for {stall_s:.0f}s with lag" if self.stall.stalled
                      else "committed offsets advancing or no lag"},
        }
        return {"service": report["service"], "ready": all(c["ok"] for c in checks.values()), "checks": checks}
