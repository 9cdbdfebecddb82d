"""The Faust app factory: one `StreamApp` per stream process, configured only from `Settings`.

Broker, app id (prefixed like the topics), `memory://` table store (tables recover from their
changelog topics), partitions and replication from the catalog, a web port per stream (from the
topology in `soma.ops.supervisor.spec`). What the app does is the runtime's, one concern a module
(`streams.runtime`): records (decode, DLQ), emit (send, acknowledge, partition), state (awaited
changelog writes), config_mirror (live config), health (views, stall, DLQ depth, assignment),
tracing (`process` spans), batches (the agent loop, `complete`) and recovery (the table manager
whose recovery resumes the sources without dropping records: faust-streaming's race, described there).

Agent concurrency is 1 (Faust's default); the app scales by partitions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from soma.contracts.catalog import catalog_for
from soma.contracts.codec import Codec
from soma.contracts.internal_topics import replication
from soma.contracts.partition import aiokafka_partitioner
from soma.live_config import LiveConfig
from soma.observability import telemetry
from soma.observability.logs import logging_dict_config
from soma.observability.readiness import Readiness
from soma.ops.supervisor.spec import SpecError, stream_topology
from soma.settings import Settings, load_settings
from soma.settings.sections import RECORD_FRAMING_BYTES
from streams.logic.stall import StallDetector
from streams.runtime.auth import faust_credentials
from streams.runtime.batches import Batches
from streams.runtime.consumer_thread import SparseApp
from streams.runtime.faust_worker import StreamWorker
from streams.runtime.health import Health
from streams.runtime.metrics import StreamMetrics
from streams.runtime.monitor import SparseMonitor
from streams.runtime.recovery import StreamTableManager
from streams.runtime.state import StateWriter
from streams.runtime.tolerant_records import install as read_non_utf8_header_names

read_non_utf8_header_names()  # one record's bad header name must not kill the consumer (see the module)
PRODUCER_BATCH_BYTES = 256 * 1024  # per partition (at most SOMA_KAFKA_MAX_MESSAGE_BYTES, the broker's limit)


class StreamApp(Batches, StateWriter, Health):
    def __init__(
        self, name: str, sources: Sequence[str], settings: Settings | None = None, *,
        needs: Sequence[str] = (), tables: Sequence[str] = (), sleep: bool = False,
    ) -> None:
        """`needs`/`tables`: what `/readyz` checks besides Kafka (e.g. "redis", "postgresql" and its tables);
        `sleep`: the stream applies sleep, so it keeps a sleep mirror of `cog.sleep` (streams.runtime.sleep_mirror)."""
        self.name = name
        self.settings = settings or load_settings()
        self.topology = stream_topology(name)
        if tuple(sources) != self.topology.sources:
            raise SpecError(f"stream {name}: sources {list(sources)} differ from its topology's "
                            f"{list(self.topology.sources)} (soma/ops/supervisor/spec.py)")
        self.catalog = catalog_for(self.settings)  # SOMA_ENV's partitions and replication
        counts = {t: self.catalog.topic(t).partitions for t in sources}
        if len(set(counts.values())) > 1:  # Faust assigns a key's partitions of its sources together only then
            raise SpecError(f"stream {name}: its sources are co-partitioned (same key, same partition count) but "
                            f"have {', '.join(f'{t}: {n}' for t, n in counts.items())} partitions (SOMA_ENV "
                            f"{self.settings.kafka.env or '-'!s})")
        self.codec = Codec(self.catalog, self.settings)
        self.live = LiveConfig(self.settings.streams.live)
        self.metrics = StreamMetrics(name, tenant_idle_s=self.settings.streams.metrics_tenant_idle_s,
                                     max_tenants=self.settings.streams.metrics_max_tenants)
        self.config_loaded = asyncio.Event()
        self.stall = StallDetector(self.settings.streams.stall_after_s)
        self.on_config: list[Callable[[], None]] = []
        self.init_sleep_mirror(sleep)
        self.tracer = telemetry.setup(self.settings, name)
        s = self.settings
        self.readiness = Readiness(s, f"stream-{name}", ("kafka", *needs), tables=tables)
        first = self.catalog.topic(sources[0])
        replicas, self.min_insync_replicas = replication(self.catalog, first)
        self.app = SparseApp(  # faust.App, its consumer thread's keep-alive timers at 10 s
            f"{s.kafka.topic_prefix}soma-{name}",
            broker=[f"kafka://{host}:{port}" for host, port in s.kafka_servers],
            broker_client_id=f"{s.kafka.client_id}-{name}",
            broker_credentials=faust_credentials(s),
            store="memory://",
            # Faust keeps a data directory even for memory tables; by default "<app>-data" in the cwd.
            datadir=s.stack.state_dir / "streams" / "{conf.name}-data",
            autodiscover=False,
            topic_partitions=first.partitions,
            topic_replication_factor=replicas,  # its changelog and leader topics (`soma topics ensure` makes them)
            topic_allow_declare=True,
            processing_guarantee="at_least_once",
            producer_acks=-1,
            # Java's partitioner (murmur2, as librdkafka's murmur2_random): every Faust send without a partition
            producer_partitioner=aiokafka_partitioner,
            # aiokafka counts batch framing in a record's size: leave room so prepare()'s size check decides
            producer_max_request_size=s.kafka.max_message_bytes + RECORD_FRAMING_BYTES,
            # aiokafka keeps one produce request in flight per broker and puts one batch per partition in
            # it: with its 16 KiB default a batch's 200 outputs to one partition took several round trips
            producer_max_batch_size=min(PRODUCER_BATCH_BYTES, s.kafka.max_message_bytes),
            consumer_auto_offset_reset="earliest",
            table_standby_replicas=0,
            broker_session_timeout=s.streams.session_timeout_s,
            broker_heartbeat_interval=min(3.0, s.streams.session_timeout_s / 3),
            web_host=s.streams.web_host,
            web_port=stream_topology(name).web_port(s),
            web_transport="tcp://",
            logging_config=logging_dict_config(s, f"stream-{name}"),  # JSON lines once the worker starts
            Worker=StreamWorker,
            TableManager=StreamTableManager,  # recovery that loses no source record (streams.runtime.recovery)
            Monitor=SparseMonitor,  # rates sampled every 10 s, not every second (idle wake-ups)
        )
        self.logical = {s.topic_name(t): t for t in self.catalog.topics}
        self.sources = self.app.topic(
            *[s.topic_name(t) for t in sources],
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        )
        self.source_names = {s.topic_name(t) for t in sources}
        self.app.task(self.mirror_config)
        if sleep:
            self.app.task(self.mirror_sleep)
        if self.tracer is not None:  # export batched spans before a slow shutdown can end in SIGKILL
            self.app.on_before_shutdown.connect(self._flush_spans)
        self.app.on_before_shutdown.connect(self._close_dlq_reader)
        self.app.timer(interval=5.0)(self.check_readiness)
        self.app.timer(interval=15.0)(self.measure_dlq)
        self.app.timer(interval=min(60.0, self.settings.streams.metrics_tenant_idle_s))(self.sweep_tenant_metrics)
        self.add_views()

    async def sweep_tenant_metrics(self) -> None:
        """Remove the metric series of tenants idle longer than SOMA_STREAMS_METRICS_TENANT_IDLE_S (an app timer)."""
        self.metrics.sweep_tenants()

    async def _close_dlq_reader(self, sender: Any, **kwargs: Any) -> None:
        await self._drop_dlq_reader()

    @staticmethod
    async def _flush_spans(sender: Any, **kwargs: Any) -> None:
        await asyncio.to_thread(telemetry.flush, 5.0)
