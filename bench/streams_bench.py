"""Stream benchmarks, each against a baseline measured in the same run.

    python bench/streams_bench.py --updates 20000 --chat-rate 200 --chat-seconds 20

1. Integrator throughput: N predictor updates (100 tenants, 5 domains) pre-loaded on
   cog.predictor_updates; a real `faust -A streams.integrator worker` (ENABLE_COG_THREADS on,
   no OPA, Redis frame cache on) turns them into N global frames; rate = N / (last frame time -
   first frame time). Baseline: a plain aiokafka consume -> same propose/commit math -> produce
   (shared record builder) loop over the same input, without Redis, tables or per-record
   delivery waits. Target: >= 0.5x the baseline.
2. End-to-end latency chat.messages -> replica row: worker + replicator running; user messages
   produced at a steady rate; latency = row applied_at (PostgreSQL clock) - message occurred_at
   (client clock, same host); p50/p99.

Runs in a topic prefix and PostgreSQL schema of its own (dropped at the end); every wait bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from bench.machine import describe
from soma.clients import database_engine, kafka_admin
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import EventProducer, prepare
from soma.contracts.ids import derive_id
from soma.ops.isolation import isolated_run
from soma.ops.local_platform import free_port_base, stream_process, wait_ready
from soma.ops.processes import run_soma
from soma.settings import Settings, load_settings
from streams.logic.integrate import IntegratorParams, IntegratorState, commit, propose

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


def _wait_count(settings: Settings, topic: str, target: int, timeout_s: float) -> tuple[float, float]:
    """(time the first output appeared, time the target count was reached) by polling watermarks."""
    first = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = _high(settings, topic)
        now = time.monotonic()
        if n > 0 and first is None:
            first = now
        if n >= target:
            return first or now, now
        time.sleep(0.05)
    raise TimeoutError(f"{topic}: {target} records not reached in {timeout_s}s")


def load_updates(settings: Settings, n: int) -> None:
    producer = EventProducer(settings, load_catalog(), Codec(load_catalog(), settings))
    batch = []
    for i in range(n):
        tenant = f"t{i % 100}"
        batch.append(producer.prepare("cog.predictor_updates", {
            "tenant_id": tenant, "source_kind": "state", "predictor_id": "p", "domain": f"d{(i * 7) % 5}",
            "confidence": float((i * 13) % 17),
        }, tenant=tenant))
        if len(batch) == 5000:
            producer.send_all(batch, timeout_s=60)
            batch = []
    if batch:
        producer.send_all(batch, timeout_s=60)


async def baseline(settings: Settings, n: int) -> float:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    catalog = load_catalog()
    codec = Codec(catalog, settings)
    consumer = AIOKafkaConsumer(settings.topic_name("cog.predictor_updates"),
                                bootstrap_servers=settings.kafka.bootstrap,
                                group_id=f"bench-baseline-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=True)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    states: dict[str, IntegratorState] = {}
    params = IntegratorParams(alpha=0.5, temperature=1.0)
    done = 0
    start = None
    try:
        while done < n:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                for message in messages:
                    start = start or time.monotonic()
                    update = codec.decode("cog.predictor_updates", message.value)
                    tenant = update["tenant_id"]
                    state = states.get(tenant, IntegratorState())
                    proposal = propose(state, update, params)
                    if proposal is None:
                        continue
                    states[tenant], fields = commit(state, proposal)
                    record = prepare(catalog, codec, settings, "cog.global_frame", {
                        "event_id": derive_id(update["event_id"], "frame"), "occurred_at": update["occurred_at"],
                        **fields}, tenant=tenant)
                    await producer.send(record.physical_topic + "-bl",
                                        record.value, key=record.key, headers=record.headers)
                    done += 1
        await producer.flush()
        return n / (time.monotonic() - (start or time.monotonic()))
    finally:
        await consumer.stop()
        await producer.stop()


def integrator_throughput(settings: Settings, n: int) -> tuple[float, float]:
    admin = kafka_admin(settings)
    from confluent_kafka.admin import NewTopic

    for f in admin.create_topics([NewTopic(settings.topic_name("cog.global_frame") + "-bl", 3, 1)]).values():
        f.result(timeout=30)
    load_updates(settings, n)
    base = asyncio.run(baseline(settings, n))
    own = settings.replace(enable_cog_threads=True, streams_web_port_base=free_port_base())
    with stream_process("integrator", own, LOGS):
        wait_ready(own, "integrator", timeout_s=90)
        first, last = _wait_count(own, "cog.global_frame", n, timeout_s=600)
    return n / (last - first), base


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=20000)
    parser.add_argument("--chat-rate", type=float, default=200.0)
    parser.add_argument("--chat-seconds", type=float, default=20.0)
    args = parser.parse_args()
    with isolated_run(load_settings(), "bench", uuid.uuid4().hex[:6]) as settings:
        assert run_soma(settings, "topics", "ensure").returncode == 0
        assert run_soma(settings, "db", "upgrade", "head").returncode == 0
        print(f"machine: {describe()}")
        rate, base = integrator_throughput(settings, args.updates)
        print(f"integrator: {rate:,.0f} updates/s through faust worker; baseline aiokafka loop {base:,.0f}/s; "
              f"ratio {rate / base:.2f}x (target >= 0.5x)")
        p50, p99, n = chat_latency(settings, args.chat_rate, args.chat_seconds)
        print(f"chat.messages -> replica row at {args.chat_rate:.0f} msg/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
              f"({n} messages)")


if __name__ == "__main__":
    main()
