"""A bounded load run through the whole running platform (`soma bench load --rate R --duration S`).

- Chat: user messages at `rate` per second, written through the outbox writer (the due
  messages of each 10 ms tick in one transaction), so the relay publishes them; every
  `tool_every`-th message asks for the `echo` tool in a session of its own. Latency: the
  replica row's `applied_at` (PostgreSQL clock) minus the writer's commit time (same host),
  read from the `memory_replica` table once the run has drained; for a tool call, the row
  of the role=tool message (the whole round trip: relay, worker, tools, worker, replicator).
- Predictor updates at `predictor_rate` per second, produced straight to Kafka with the
  shared record builder. Latency: the global frame's Kafka timestamp minus the update's send
  time, frames read from cog.global_frame (each frame's id is derived from its update's).
- ENABLE_COG_THREADS is switched on for the run's tenants only (tenant-scoped live updates).
- Resource use of each platform process: CPU seconds and peak RSS during the run (/proc).

Loopback only: a non-loopback Kafka, PostgreSQL or Redis address is refused before anything is sent.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from bench.proc_usage import Sampler, Usage
from soma.errors import SomaError
from soma.settings import Settings, env_name

MAX_RATE = 2000.0
MAX_DURATION_S = 300.0
TICK_S = 0.01
TENANTS = 4
DOMAINS = ("plan", "act", "recall", "ask", "reflect")


class Probe(Protocol):
    """Watches the load window: `start` as the load begins (with the measured processes), `stop` as it ends."""

    def start(self, pids: dict[str, int]) -> None: ...

    def stop(self) -> None: ...


class LoadRefused(SomaError):
    """The load run will not start (a non-loopback target, a rate or duration past the cap)."""


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_target(settings: Settings, rate: float, duration_s: float) -> None:
    """Raise `LoadRefused` (one line naming the setting or option) unless the run is local and bounded."""
    for host, _ in settings.kafka_servers:
        if not is_loopback(host):
            raise LoadRefused(f"bench load: Kafka {host} is not a loopback address ({env_name('kafka_bootstrap')})")
    db_host = settings.sqlalchemy_url().host or "localhost"  # no host: a local Unix socket
    if not is_loopback(db_host) and not db_host.startswith("/"):
        raise LoadRefused(f"bench load: PostgreSQL {db_host} is not a loopback address ({env_name('database_url')})")
    from urllib.parse import urlsplit

    redis_url = settings.redis_url_value()
    redis_host = urlsplit(redis_url).hostname or "localhost"
    if not redis_url.startswith("unix://") and not is_loopback(redis_host):
        raise LoadRefused(f"bench load: Redis {redis_host} is not a loopback address ({env_name('redis_url')})")
    if not 0 < rate <= MAX_RATE:
        raise LoadRefused(f"bench load: --rate must be in (0, {MAX_RATE:.0f}] messages/s, got {rate:g}")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise LoadRefused(f"bench load: --duration must be in (0, {MAX_DURATION_S:.0f}] seconds, got {duration_s:g}")


def percentiles(values: Sequence[float], points: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles plus max; empty input gives an empty dict."""
    if not values:
        return {}
    ordered = sorted(values)
    out = {}
    for p in points:
        rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))  # ceil(p/100 * n)
        out[f"p{p:g}"] = ordered[rank - 1]
    out["max"] = ordered[-1]
    return out


@dataclass
class Series:
    """One measured path: how many went in, how many came out, their latencies (seconds)."""

    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    first_in: float | None = None
    last_out: float | None = None

    @property
    def received(self) -> int:
        return len(self.latencies)

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.received)

    @property
    def throughput(self) -> float:
        if not self.latencies or self.first_in is None or self.last_out is None or self.last_out <= self.first_in:
            return 0.0
        return self.received / (self.last_out - self.first_in)

    def summary(self) -> dict[str, Any]:
        return {"sent": self.sent, "received": self.received, "lost": self.lost,
                "throughput_per_s": round(self.throughput, 1),
                "latency_ms": {k: round(v * 1000, 1) for k, v in percentiles(self.latencies).items()}}


@dataclass
class LoadReport:
    rate: float
    predictor_rate: float
    duration_s: float
    achieved_chat_rate: float
    chat: Series
    tool_round_trip: Series
    frames: Series
    processes: list[Usage]
    machine: str
    notes: list[str] = field(default_factory=list)
    chat_to_memory_write: Series = field(default_factory=Series)  # an intermediate hop: where the time goes

    @property
    def lost(self) -> int:
        return self.chat.lost + self.tool_round_trip.lost + self.frames.lost

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate, "predictor_rate": self.predictor_rate, "duration_s": self.duration_s,
            "achieved_chat_rate": round(self.achieved_chat_rate, 1), "machine": self.machine,
            "chat_commit_to_replica_row": self.chat.summary(),
            "tool_call_commit_to_replica_row_of_result": self.tool_round_trip.summary(),
            "chat_commit_to_memory_write (worker output, intermediate)": self.chat_to_memory_write.summary(),
            "predictor_update_to_global_frame": self.frames.summary(),
            "processes": [{"name": u.name, "pid": u.pid, "cpu_s": None if u.cpu_s is None else round(u.cpu_s, 2),
                           "cpu_load_s": None if u.cpu_load_s is None else round(u.cpu_load_s, 2),
                           "peak_rss_mib": round(u.peak_rss_mib, 1),
                           "hwm_mib": None if u.hwm_mib is None else round(u.hwm_mib, 1), "alive": u.alive}
                          for u in self.processes],
            "notes": self.notes,
        }


class LoadRun:
    def __init__(self, settings: Settings, rate: float, duration_s: float, *, predictor_rate: float | None = None,
                 tool_every: int = 10, pids: dict[str, int] | None = None, drain_timeout_s: float = 60.0,
                 warmup_timeout_s: float = 60.0, probes: Sequence[Probe] = ()) -> None:
        from outbox.writer import OutboxWriter
        from soma.clients import database_engine, kafka_producer
        from soma.contracts.catalog import load_catalog
        from soma.contracts.codec import Codec

        check_target(settings, rate, duration_s)
        if predictor_rate is not None and not 0 <= predictor_rate <= MAX_RATE:
            raise LoadRefused(f"bench load: --predictor-rate must be in [0, {MAX_RATE:.0f}], got {predictor_rate:g}")
        self.settings, self.rate, self.duration_s = settings, rate, duration_s
        self.predictor_rate = rate if predictor_rate is None else predictor_rate
        self.tool_every, self.drain_timeout_s, self.warmup_timeout_s = tool_every, drain_timeout_s, warmup_timeout_s
        self.pids, self.probes = pids, list(probes)
        run = uuid.uuid4().hex[:6]
        self.tenants = [f"load-{run}-{n}" for n in range(TENANTS)]
        self.catalog = load_catalog()
        self.codec = Codec(self.catalog, settings)
        self.writer = OutboxWriter(self.catalog, self.codec, settings)
        self.engine = database_engine(settings, pool_size=2)
        self.producer = kafka_producer(settings)
        self.commits: dict[tuple[str, str], float] = {}  # (tenant, memory key of the replica row) -> commit time
        self.tool_keys: set[tuple[str, str]] = set()
        self.update_sent: dict[str, float] = {}  # derived frame id -> send time
        self.chat_sent = 0
        self.to_worker = Series()

    # --- set-up ------------------------------------------------------------------------------
    def enable_cog(self) -> None:
        from soma.config_updates import publish

        for tenant in self.tenants:
            publish(self.settings, "ENABLE_COG_THREADS", "true", tenant=tenant, author="soma-bench-load")

    def _send_update(self, tenant: str, domain: str, confidence: float) -> None:
        from soma.contracts.events import prepare
        from soma.contracts.ids import derive_id

        event_id = str(uuid.uuid4())
        record = prepare(self.catalog, self.codec, self.settings, "cog.predictor_updates", {
            "event_id": event_id, "source_kind": "state", "predictor_id": "load", "domain": domain,
            "confidence": confidence}, tenant=tenant)
        self.update_sent[derive_id(event_id, "frame")] = time.time()
        while True:
            try:
                self.producer.produce(record.physical_topic, key=record.key, value=record.value,
                                      headers=cast(Any, record.headers))
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def _write_chat(self, items: list[tuple[str, dict[str, Any], bool]]) -> None:
        from sqlalchemy.orm import Session

        from outbox.writer import Emission

        emissions = [Emission("chat.messages", message, tenant,
                              f"load:{message['session_id']}:{message['sequence']}") for tenant, message, _ in items]
        with Session(self.engine) as session, session.begin():
            self.writer.emit_many(session, emissions)
        committed = time.time()
        for tenant, message, tool in items:
            session_id, sequence = message["session_id"], int(message["sequence"])
            self.commits[(tenant, f"chat:{session_id}:{sequence:012d}")] = committed
            if tool:
                key = (tenant, f"chat:{session_id}:{sequence + 1:012d}")
                self.commits[key] = committed
                self.tool_keys.add(key)

    def _message(self, n: int) -> tuple[str, dict[str, Any], bool]:
        tenant = self.tenants[n % len(self.tenants)]
        if self.tool_every and n % self.tool_every == self.tool_every - 1:
            return tenant, {"session_id": f"t{n}", "sequence": 1, "role": "user", "content": f"tool please {n}",
                            "tool_calls": [{"call_id": f"c{n}", "tool": "echo",
                                            "arguments_json": json.dumps({"n": n})}]}, True
        session = n // len(self.tenants) % 50
        sequence = n // (len(self.tenants) * 50) + 1
        return tenant, {"session_id": f"s{session}", "sequence": sequence, "role": "user",
                        "content": f"message {n} " + "x" * 120}, False

    def _replica_rows(self) -> dict[tuple[str, str], float]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT tenant_id, memory_key, applied_at FROM memory_replica"
                                     " WHERE tenant_id = ANY(:tenants)"), {"tenants": self.tenants}).all()
        return {(r[0], r[1]): r[2].timestamp() for r in rows}

    def warm_up(self, observer: Any) -> None:
        """One frame and one replica row per tenant before measuring (assignments done, caches warm)."""
        deadline = time.monotonic() + self.warmup_timeout_s
        for tenant in self.tenants:
            self._write_chat([(tenant, {"session_id": "warm", "sequence": 1, "role": "user", "content": "warm"},
                               False)])
        pending = set(self.tenants)
        while pending:
            if time.monotonic() > deadline:
                raise LoadRefused(f"bench load: no global frame for {sorted(pending)} within "
                                  f"{self.warmup_timeout_s:.0f}s: is the integrator running (with these settings)?")
            for tenant in pending:
                self._send_update(tenant, "plan", 1.0)
            self.producer.flush(5)
            time.sleep(0.5)
            pending = {t for t in pending
                       if not observer.matching(lambda s, t=t: s.topic == "cog.global_frame" and s.tenant == t)}
        while len([k for k in self._replica_rows() if k[1].startswith("chat:warm:")]) < len(self.tenants):
            if time.monotonic() > deadline:
                raise LoadRefused(f"bench load: no replica rows within {self.warmup_timeout_s:.0f}s: "
                                  "are the relay, the worker and the replicator running?")
            time.sleep(0.2)
        self.commits.clear()
        self.update_sent.clear()

    # --- the run ------------------------------------------------------------------------------
    def drive(self) -> float:
        """Offer chat and predictor traffic at the configured rates for the duration; the achieved chat rate."""
        start = time.monotonic()
        end = start + self.duration_s
        chats = updates = 0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            elapsed = now - start
            due_chat = int(elapsed * self.rate) - chats
            if due_chat > 0:
                self._write_chat([self._message(chats + i) for i in range(due_chat)])
                chats += due_chat
            due_updates = int(elapsed * self.predictor_rate) - updates
            for i in range(max(0, due_updates)):
                n = updates + i
                tenant = self.tenants[n % len(self.tenants)]
                domain = DOMAINS[(n // len(self.tenants)) % len(DOMAINS)]
                self._send_update(tenant, domain, float((n * 7) % 11) + 1.0)
            updates += max(0, due_updates)
            next_tick = now + TICK_S
            time.sleep(max(0.0, next_tick - time.monotonic()))
        self.producer.flush(30)
        self.chat_sent = chats
        return chats / (time.monotonic() - start)

    def collect(self, observer: Any, started: float) -> tuple[Series, Series, Series]:
        chat, tool, frames = Series(), Series(), Series()
        expected = len(self.commits)
        deadline = time.monotonic() + self.drain_timeout_s
        rows: dict[tuple[str, str], float] = {}
        seen_frames: list[Any] = []
        while time.monotonic() < deadline:
            rows = self._replica_rows()
            seen_frames = observer.matching(lambda s: s.topic == "cog.global_frame" and s.tenant in self.tenants
                                            and s.value["event_id"] in self.update_sent)
            if sum(1 for k in self.commits if k in rows) >= expected and len(seen_frames) >= len(self.update_sent):
                break
            time.sleep(0.5)
        for key, committed in self.commits.items():
            series = tool if key in self.tool_keys else chat
            series.sent += 1
            series.first_in = started
            if key in rows:
                series.latencies.append(max(0.0, rows[key] - committed))
                series.last_out = max(series.last_out or 0.0, rows[key])
        frames.sent = len(self.update_sent)
        frames.first_in = started
        for frame in {s.value["event_id"]: s for s in seen_frames}.values():
            frames.latencies.append(max(0.0, frame.at - self.update_sent[frame.value["event_id"]]))
            frames.last_out = max(frames.last_out or 0.0, frame.at)
        writes = {(s.tenant, s.value["memory_key"]): s.at for s in observer.matching(
            lambda s: s.topic == "memory.writes" and s.tenant in self.tenants)}
        self.to_worker = Series(first_in=started)
        for key, committed in self.commits.items():
            if key in self.tool_keys:
                continue
            self.to_worker.sent += 1
            if key in writes:
                self.to_worker.latencies.append(max(0.0, writes[key] - committed))
                self.to_worker.last_out = max(self.to_worker.last_out or 0.0, writes[key])
        return chat, tool, frames

    def run(self) -> LoadReport:
        from bench.demo.observe import Observer
        from bench.machine import describe
        from bench.proc_usage import platform_pids

        pids = self.pids if self.pids is not None else platform_pids(self.settings.stack.state_dir,
                                                                      self.settings.kafka.topic_prefix)
        observer = Observer(self.settings, self.catalog, self.codec, ["cog.global_frame", "memory.writes"])
        observer.start()
        notes = []
        try:
            self.enable_cog()
            self.warm_up(observer)
            for probe in self.probes:  # before the sampler: a probe may take a quiet window first
                probe.start(pids)
            sampler = Sampler({**pids, "bench-driver (this process)": os.getpid()})
            sampler.start()
            started = time.time()
            achieved = self.drive()
            sampler.mark()
            for probe in self.probes:
                probe.stop()
            chat, tool, frames = self.collect(observer, started)
            usage = sampler.stop()
        finally:
            observer.stop()
            self.engine.dispose()
        if not pids:
            notes.append("no platform processes found for resource use (pass --pids name=pid,...)")
        notes.append("chat latency: memory_replica.applied_at (PostgreSQL) - writer commit time (same host clock)")
        notes.append("frame latency: cog.global_frame record timestamp - predictor update send time")
        return LoadReport(self.rate, self.predictor_rate, self.duration_s, achieved, chat, tool, frames, usage,
                          describe(), notes, self.to_worker)
