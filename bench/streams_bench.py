"""Stream benchmarks, each against a baseline measured in the same run.

    python bench/streams_bench.py --updates 20000 --messages 10000 --chat-rate 200 --chat-seconds 20

1. Integrator throughput: N predictor updates (100 tenants, 5 domains) pre-loaded on
   cog.predictor_updates; a real `faust -A streams.integrator worker` (ENABLE_COG_THREADS on,
   no OPA, Redis frame cache on) turns them into N global frames; rate = N / (last frame time -
   first frame time). Baseline: a plain aiokafka consume -> same propose/commit math -> produce
   (shared record builder) loop over the same input, without Redis, tables or per-record
   delivery waits. Target: >= 0.5x the baseline.
2. Worker throughput, the same way: M user chat messages (20 tenants x 50 sessions) pre-loaded on
   chat.messages; `faust -A streams.worker worker` turns each into a memory write; baseline: a
   plain aiokafka loop with the same `session.decide` and record builder, session states in a dict.
   Both print CPU per event too (the stream process's CPU from its first output to its last; the
   loop's own process time), which the machine's other load disturbs less than the rates.
3. End-to-end latency chat.messages -> replica row: worker + replicator running; user messages
   produced at a steady rate; latency = row applied_at (PostgreSQL clock) - message occurred_at
   (client clock, same host); p50/p99.

Runs in a topic prefix and PostgreSQL schema of its own (dropped at the end); every wait bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from bench.machine import describe
from bench.proc_usage import cpu_seconds, discover
from soma.clients import database_engine, kafka_admin
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import EventProducer, OutgoingRecord, prepare
from soma.contracts.ids import derive_id
from soma.ops.isolation import isolated_run
from soma.ops.local_platform import free_port_base, stream_process, wait_ready
from soma.ops.processes import run_soma
from soma.settings import Settings, load_settings
from streams.logic import session
from streams.logic.integrate import IntegratorParams, IntegratorState, commit, propose
from streams.logic.responders import NullResponder
from streams.logic.session import SessionState

LOGS = Path(".soma/bench-logs")


def _high(settings: Settings, topic: str) -> int:
    from confluent_kafka import TopicPartition

    from soma.clients import kafka_consumer

    c = kafka_consumer(settings, f"bench-probe-{uuid.uuid4().hex[:6]}")
    try:
        return sum(c.get_watermark_offsets(TopicPartition(settings.topic_name(topic), p), timeout=10)[1]
                   for p in range(3))
    finally:
        c.close()


def _wait_count(settings: Settings, topic: str, target: int, timeout_s: float,
                pid: int) -> tuple[float, float, float]:
    """(time the first output appeared, time the target count was reached, CPU seconds of `pid` between) by
    polling watermarks."""
    first = None
    cpu_first = 0.0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = _high(settings, topic)
        now = time.monotonic()
        if n > 0 and first is None:
            first, cpu_first = now, cpu_seconds(pid) or 0.0
        if n >= target:
            return first or now, now, (cpu_seconds(pid) or 0.0) - cpu_first
        time.sleep(0.05)
    raise TimeoutError(f"{topic}: {target} records not reached in {timeout_s}s")


def preload(settings: Settings, topic: str, n: int, make: Callable[[int], dict[str, Any]]) -> None:
    """`n` records `make(i)` (each with its tenant_id) on `topic`, sent 5000 at a time."""
    producer = EventProducer(settings, load_catalog(), Codec(load_catalog(), settings))
    for start in range(0, n, 5000):
        producer.send_all([producer.prepare(topic, value, tenant=value["tenant_id"])
                           for value in map(make, range(start, min(n, start + 5000)))], timeout_s=60)


def update(i: int) -> dict[str, Any]:
    """Predictor update `i`: 100 tenants, 5 domains."""
    return {"tenant_id": f"t{i % 100}", "source_kind": "state", "predictor_id": "p", "domain": f"d{(i * 7) % 5}",
            "confidence": float((i * 13) % 17)}


def message(i: int) -> dict[str, Any]:
    """User chat message `i`: 20 tenants x 50 sessions, sequences in order within each session."""
    return {"tenant_id": f"t{i % 20}", "session_id": f"s{i // 20 % 50}", "sequence": i // 1000 + 1,
            "role": "user", "content": f"message {i} " + "x" * 120}


Handle = Callable[[dict[str, Any]], list[OutgoingRecord]]


async def bare_loop(settings: Settings, topic: str, n: int, handle: Handle) -> tuple[float, float]:
    """Consume `n` records of `topic`, hand each decoded one to `handle`, produce what it returns (to `<topic>-bl`
    copies, acks=all, awaited once at the end): (records/s, CPU seconds per record)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    codec = Codec(load_catalog(), settings)
    consumer = AIOKafkaConsumer(settings.topic_name(topic), bootstrap_servers=settings.kafka.bootstrap,
                                group_id=f"bench-baseline-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=True)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    done = 0
    start = cpu = None
    try:
        while done < n:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                for message in messages:
                    if start is None:
                        start, cpu = time.monotonic(), time.process_time()
                    for record in handle(codec.decode(topic, message.value)):
                        await producer.send(record.physical_topic + "-bl", record.value, key=record.key,
                                            headers=record.headers)
                    done += 1
        await producer.flush()
        return n / (time.monotonic() - (start or 0.0)), (time.process_time() - (cpu or 0.0)) / n
    finally:
        await consumer.stop()
        await producer.stop()


def integrator_handle(settings: Settings) -> Handle:
    catalog = load_catalog()
    codec = Codec(catalog, settings)
    states: dict[str, IntegratorState] = {}
    params = IntegratorParams(alpha=0.5, temperature=1.0)

    def handle(update: dict[str, Any]) -> list[OutgoingRecord]:
        tenant = update["tenant_id"]
        state = states.get(tenant, IntegratorState())
        proposal = propose(state, update, params)
        if proposal is None:
            return []
        states[tenant], fields = commit(state, proposal)
        return [prepare(catalog, codec, settings, "cog.global_frame", {
            "event_id": derive_id(update["event_id"], "frame"), "occurred_at": update["occurred_at"], **fields},
            tenant=tenant)]

    return handle


def worker_handle(settings: Settings) -> Handle:
    catalog = load_catalog()
    codec = Codec(catalog, settings)
    states: dict[str, SessionState] = {}
    window = settings.streams.dedupe_window

    def handle(message: dict[str, Any]) -> list[OutgoingRecord]:
        key = f"{message['tenant_id']}:{message['session_id']}"
        states[key], outputs = session.decide(states.get(key, SessionState()), "chat.messages", message,
                                              window=window, respond=NullResponder().respond)
        return [prepare(catalog, codec, settings, o.topic, dict(o.event), tenant=message["tenant_id"])
                for o in outputs]

    return handle


def _bl_topics(settings: Settings, *topics: str) -> None:
    from confluent_kafka.admin import NewTopic

    admin = kafka_admin(settings)  # held until the futures are done: its handle dies with it
    for future in admin.create_topics([NewTopic(settings.topic_name(t) + "-bl", 3, 1) for t in topics]).values():
        future.result(timeout=30)


def through_stream(settings: Settings, name: str, output: str, n: int) -> tuple[float, float]:
    """`faust -A streams.<name> worker` over the pre-loaded input: (outputs/s, its CPU seconds per output)."""
    own = settings.replace(enable_cog_threads=True, streams_web_port_base=free_port_base())
    with stream_process(name, own, LOGS):
        wait_ready(own, name, timeout_s=90)
        pid = discover(own.kafka.topic_prefix)[f"stream-{name}"]
        first, last, cpu = _wait_count(own, output, n, timeout_s=600, pid=pid)
    return n / (last - first), cpu / n


def integrator_throughput(settings: Settings, n: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """((stream rate, CPU/update), (baseline rate, CPU/update)) over the same N updates."""
    _bl_topics(settings, "cog.global_frame")
    preload(settings, "cog.predictor_updates", n, update)
    base = asyncio.run(bare_loop(settings, "cog.predictor_updates", n, integrator_handle(settings)))
    return through_stream(settings, "integrator", "cog.global_frame", n), base


def worker_throughput(settings: Settings, n: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """((stream rate, CPU/message), (baseline rate, CPU/message)) over the same M messages."""
    _bl_topics(settings, "memory.writes")
    preload(settings, "chat.messages", n, message)
    base = asyncio.run(bare_loop(settings, "chat.messages", n, worker_handle(settings)))
    return through_stream(settings, "worker", "memory.writes", n), base


def chat_latency(settings: Settings, rate: float, seconds: float) -> tuple[float, float, int]:
    own = settings.replace(streams_web_port_base=free_port_base())
    catalog = load_catalog()
    producer = EventProducer(own, catalog, Codec(catalog, own))
    tenant = "lat"
    total = int(rate * seconds)
    with stream_process("worker", own, LOGS), stream_process("replicator", own, LOGS):
        wait_ready(own, "worker", timeout_s=90)
        wait_ready(own, "replicator", timeout_s=90)
        # warm-up message, so partition assignment is done before measuring
        producer.send("chat.messages", {"tenant_id": tenant, "session_id": "warm", "sequence": 1, "role": "user",
                                        "content": "warm"}, tenant=tenant)
        engine = database_engine(own)
        deadline = time.monotonic() + 90
        while True:
            with engine.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM memory_replica")).scalar_one() >= 1:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("warm-up row never arrived")
            time.sleep(0.2)
        start = time.monotonic()
        for i in range(total):
            due = start + i / rate
            while time.monotonic() < due:
                time.sleep(0.0005)
            record = producer.prepare("chat.messages", {
                "tenant_id": tenant, "session_id": f"s{i % 20}", "sequence": i // 20 + 1, "role": "user",
                "content": f"m{i}", "occurred_at": datetime.now(UTC)}, tenant=tenant)
            producer._produce(record, None)
            producer._producer.poll(0)
        producer._producer.flush(30)
        deadline = time.monotonic() + 120
        while True:
            with engine.connect() as conn:
                n = conn.execute(text("SELECT count(*) FROM memory_replica WHERE session_id <> 'warm'")).scalar_one()
            if n >= total or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT extract(epoch FROM applied_at - last_occurred_at) * 1000 FROM memory_replica "
                "WHERE session_id <> 'warm'")).scalars().all()
        engine.dispose()
    lat = sorted(float(r) for r in rows)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return p50, p99, len(lat)


def _side_by_side(what: str, unit: str, stream: tuple[float, float], base: tuple[float, float]) -> None:
    print(f"{what}: {stream[0]:,.0f} {unit}/s through faust worker ({stream[1] * 1e6:,.0f} us CPU each); "
          f"baseline aiokafka loop {base[0]:,.0f}/s ({base[1] * 1e6:,.0f} us CPU each); "
          f"ratio {stream[0] / base[0]:.2f}x (target >= 0.5x); load average {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=20000)
    parser.add_argument("--messages", type=int, default=10000, help="chat messages for the worker (0: skip)")
    parser.add_argument("--chat-rate", type=float, default=200.0)
    parser.add_argument("--chat-seconds", type=float, default=20.0, help="0: skip the latency run")
    args = parser.parse_args()
    with isolated_run(load_settings(), "bench", uuid.uuid4().hex[:6]) as settings:
        assert run_soma(settings, "topics", "ensure").returncode == 0
        assert run_soma(settings, "db", "upgrade", "head").returncode == 0
        print(f"machine: {describe()}", flush=True)
        if args.updates:
            _side_by_side("integrator", "updates", *integrator_throughput(settings, args.updates))
        if args.messages:
            _side_by_side("worker", "messages", *worker_throughput(settings, args.messages))
        if args.chat_seconds:
            p50, p99, n = chat_latency(settings, args.chat_rate, args.chat_seconds)
            print(f"chat.messages -> replica row at {args.chat_rate:.0f} msg/s: p50 {p50:.1f} ms, "
                  f"p99 {p99:.1f} ms ({n} messages)")


if __name__ == "__main__":
    main()
