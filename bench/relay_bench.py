"""Outbox relay and writer benchmarks, each against a baseline measured in the same run.

    python bench/relay_bench.py                          # drain + ceiling, 5 x 60 s latency, writer (~8 min)
    python bench/relay_bench.py --skip writer --latency-runs 2 --latency-seconds 20   # a quick look
    python bench/relay_bench.py --memory-rows 1000000    # adds the relay's RSS while draining 1M rows

1. Drain: N pending 1 KB ChatMessage rows (10 tenants) published by the relay (in this
   process, default settings), vs the raw confluent-kafka producer (same librdkafka config
   as the relay: idempotent, acks=all) sending the same pre-encoded key/value/headers, side
   by side in each round, with each side's CPU per event. Target: relay >= 0.5x raw, or:
   Ceiling: pgbench running the relay's own claim, key probe and mark statements on the same
   rows (bench/relay_ceiling.py), 1 and 2 connections: what PostgreSQL itself allows.
2. Latency: `soma outbox relay` running; writers commit one event per transaction at a steady
   1,000 events/s; commit-to-ack (client commit time to the relay's delivery report, same
   clock) p50/p99/max of every run (each with a fresh relay; bench/relay_latency.py), and the
   relay's CPU. Target: p99 < 35 ms in 5 of 5 runs of 60 s.
3. Writer: events committed per second through `OutboxWriter.emit_many` in batches of 100
   (one writer), and single-event transactions from 4 threads; each with the coalesced
   wake-up trigger (relay busy: no NOTIFY), with every commit notifying (a relay idle forever:
   the NOTIFY-per-commit design), and with the trigger disabled (no wake-up at all).
4. Memory (--memory-rows): relay RSS sampled every second while draining M rows; peak RSS.

Everything runs against the local stack on loopback, in a schema and topic prefix of its own,
dropped at the end. Every phase is bounded in time. Each line reports the load average: the
machine may be shared, so compare sides of one run, not runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench import relay_ceiling
from bench.machine import describe
from bench.relay_latency import relay_subprocess, steady_latency
from bench.relay_rows import TENANTS, TOPIC, bench_environment, copy_rows, one_kb_events, truncate
from outbox.relay.service import Relay
from outbox.relay.wakeup import Wakeup
from outbox.writer import Emission, OutboxWriter
from soma.clients import database_engine, kafka_producer
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.settings import Settings


def log(line: str) -> None:
    print(line, flush=True)


# --- 1. drain vs raw producer ------------------------------------------------------------
def raw_producer(settings: Settings, rows: list[dict[str, Any]], timeout_s: float) -> tuple[float, float]:
    """Events/s and CPU microseconds per event (this process, every thread) of the bare producer."""
    producer = kafka_producer(settings)
    topic = settings.topic_name("bench.raw")
    prepared = [(r["key"].encode(), r["payload"], [(k, v.encode()) for k, v in r["headers"].items()]) for r in rows]
    acked = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    started, cpu = time.perf_counter(), time.process_time()
    for key, value, headers in prepared:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(timeout_s)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if acked != len(rows):
        raise SystemExit(f"relay_bench: raw producer got {acked}/{len(rows)} acknowledgements")
    return len(rows) / elapsed, cpu / len(rows) * 1e6


# Rows whose record landed before the record of an older row (by id) of the same (tenant, topic, key).
OUT_OF_KEY_ORDER = text(
    """
SELECT count(*) FROM (
    SELECT "offset", lag("offset") OVER (PARTITION BY tenant_id, topic, key ORDER BY id) AS previous
      FROM outbox_events WHERE status = 'sent'
) s
 WHERE previous > "offset"
"""
)


def relay_drain(settings: Settings, engine: Engine, rows: list[dict[str, Any]]) -> tuple[float, float, int]:
    """Events/s (first claim to last commit), CPU microseconds per event of the relay (in this process),
    and rows published ahead of an older row of their key (a key's rows share one partition)."""
    truncate(engine)
    copy_rows(engine, rows)
    relay = Relay(settings, serve_metrics=False)
    relay.start()
    started, cpu = time.monotonic(), time.process_time()
    stats = relay.run(drain=True)
    cpu = time.process_time() - cpu
    if stats.published != len(rows) or stats.last_commit_at is None:
        raise SystemExit(f"relay_bench: relay published {stats.published}/{len(rows)}")
    with engine.connect() as conn:
        out_of_order = int(conn.execute(OUT_OF_KEY_ORDER).scalar() or 0)
    return len(rows) / (stats.last_commit_at - started), cpu / len(rows) * 1e6, out_of_order


# --- 3. writer throughput ------------------------------------------------------------------
@contextmanager
def wakeup_mode(engine: Engine, mode: str) -> Iterator[None]:
    """coalesced: the trigger, no relay idle (writers take the shared lock, never NOTIFY);
    notify-every-commit: a relay idle forever holds the lock (every writer transaction NOTIFYs);
    off: the trigger disabled (no wake-up at all)."""
    truncate(engine)
    holder: Wakeup | None = None
    if mode == "off":
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE outbox_events DISABLE TRIGGER outbox_events_wake_relay"))
    elif mode == "notify-every-commit":
        holder = Wakeup(engine)
        if not holder.try_idle():
            raise SystemExit("relay_bench: could not take the idle lock")
    try:
        yield
    finally:
        if holder is not None:
            holder.close()
        if mode == "off":
            with engine.begin() as conn:
                conn.execute(text("ALTER TABLE outbox_events ENABLE TRIGGER outbox_events_wake_relay"))


def writer_throughput(engine: Engine, writer: OutboxWriter, batch: int, threads: int, seconds: float) -> float:
    """Events/s committed through OutboxWriter.emit_many, `batch` events per transaction."""
    counts = [0] * threads
    stop_at = time.monotonic() + seconds

    def work(worker: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            emissions = [Emission(TOPIC, {"session_id": f"s-{worker}", "sequence": n + i, "role": "user",
                                          "content": "x" * 900}, TENANTS[(n + i) % 10], f"w{worker}-{n + i}")
                         for i in range(batch)]
            with Session(engine) as session, session.begin():
                writer.emit_many(session, emissions)
            n += batch
        counts[worker] = n

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join(seconds + 60)
    return sum(counts) / (time.monotonic() - started)


PGBENCH_SCRIPT = """\\set n random(1, 1000000000000)
INSERT INTO outbox_events (tenant_id, dedupe_key, topic, key, headers, payload, event_type, event_id)
VALUES ('tenant-' || (:n % 10), 'pg-' || :client_id || '-' || :n, 'chat.messages', 'k', '{"tenant": "x"}',
        decode(repeat('ab', 1000), 'hex'), 'soma.events.ChatMessage', md5(:n::text)) ON CONFLICT DO NOTHING;
"""


def pgbench_commits(settings: Settings, clients: int, seconds: float) -> float | None:
    """Commits/s of one-row (1 KB) INSERT transactions from `clients` pgbench connections (no Python)."""
    if shutil.which("pgbench") is None:
        return None
    url = settings.sqlalchemy_url()
    script = Path(f"/tmp/relay-bench-{os.getpid()}.sql")  # noqa: S108 - a throwaway script
    script.write_text(PGBENCH_SCRIPT)
    search_path = f"-c search_path={settings.database.database_schema}"
    env = dict(os.environ, PGPASSWORD=url.password or "", PGOPTIONS=search_path)
    try:
        result = subprocess.run(
            ["pgbench", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "",
             "-n", "-c", str(clients), "-j", "2", "-T", str(int(seconds)), "-f", str(script), url.database or ""],
            capture_output=True, text=True, env=env, timeout=seconds + 60, check=False,
        )
    finally:
        script.unlink()
    match = re.search(r"tps = ([0-9.]+)", result.stdout)
    return float(match.group(1)) if match else None


# --- 4. memory while draining M rows --------------------------------------------------------
def memory_drain(settings: Settings, engine: Engine, rows: list[dict[str, Any]], total: int,
                 timeout_s: float) -> dict[str, Any]:
    truncate(engine)
    base = rows[:1000]
    copy_rows(engine, base, repeat=total // len(base))
    samples: list[tuple[float, int, int]] = []  # (elapsed, rss MB, rows sent)
    log_file = Path(f"/tmp/relay-bench-mem-{os.getpid()}.log")  # noqa: S108 - the relay's log
    started = time.monotonic()
    sent, counted_at = 0, 0.0
    with relay_subprocess(settings, log_file, "--drain", "--no-metrics") as proc:
        while proc.poll() is None and time.monotonic() - started < timeout_s:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) // 1024
            except (OSError, StopIteration):
                break
            if time.monotonic() - counted_at > 2.0:
                with engine.connect() as conn:
                    sent = int(conn.execute(text("SELECT count(*) FROM outbox_events WHERE status = 'sent'")).scalar()
                               or 0)
                counted_at = time.monotonic()
            samples.append((time.monotonic() - started, rss, sent))
            time.sleep(0.1)
        proc.wait(timeout_s)
    elapsed = time.monotonic() - started
    summary = log_file.read_text(errors="replace").strip().splitlines()[-1]
    return {"samples": samples, "elapsed": elapsed, "summary": summary}


def drain_phase(settings: Settings, engine: Engine, writer: OutboxWriter, args: argparse.Namespace) -> None:
    rows = one_kb_events(writer, args.events)
    log(f"drain: {args.events} rows, {len(rows[0]['payload'])} B values, {len(TENANTS)} tenants")
    raw_rates, relay_rates = [], []
    for _ in range(args.rounds):
        raw, raw_cpu = raw_producer(settings, rows, timeout_s=120)
        relay, relay_cpu, out_of_order = relay_drain(settings, engine, rows)
        raw_rates.append(raw)
        relay_rates.append(relay)
        log(f"  round: raw producer {raw:,.0f}/s ({raw_cpu:.0f} us CPU/event), relay {relay:,.0f}/s"
            f" ({relay_cpu:.0f} us CPU/event in the relay process) = {relay / raw:.2f}x; {out_of_order} row(s)"
            f" published ahead of an older row of their key; load {load()}")
    raw, relay = max(raw_rates), max(relay_rates)
    log(f"drain: relay {relay:,.0f} events/s vs raw producer {raw:,.0f} events/s = {relay / raw:.2f}x"
        f" (best of {args.rounds}; target >= 0.5x, or the PostgreSQL ceiling below)")
    if "ceiling" in args.skip:
        return
    batches = len(rows) // settings.relay.batch_size - 1
    for clients in (1, 2):  # the relay: one claim thread, one committer thread
        truncate(engine)
        copy_rows(engine, rows)
        result = relay_ceiling.run(settings, engine, batches, clients, timeout_s=300)
        if isinstance(result, str):
            log(f"ceiling: {result}")
            return
        log(f"ceiling (pgbench, the relay's claim + key probe + mark + commit, {clients} connection(s)):"
            f" {result.rows_per_s:,.0f} rows/s, {result.latency_ms:.1f} ms per batch ("
            + ", ".join(f"{name} {ms:.1f}" for name, ms in result.statements.items()) + f"); load {load()}")


def latency_phase(settings: Settings, engine: Engine, writer: OutboxWriter, args: argparse.Namespace) -> None:
    p99s = []
    for run in range(1, args.latency_runs + 1):
        result = steady_latency(settings, engine, writer, args.rate, args.latency_seconds, threads=args.writers)
        p99s.append(result["p99"])
        log(f"latency run {run}: {result['events']} events at {result['achieved_rate']:,.0f}/s for"
            f" {args.latency_seconds:.0f} s; commit-to-ack p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms,"
            f" max {result['max']:.1f} ms (insert-to-ack p50 {result['insert_p50']:.1f} ms,"
            f" p99 {result['insert_p99']:.1f} ms); unsent {result['unsent']}; relay CPU"
            f" {result['relay_cpu'] * 100:.0f}% of a core; load {load()}")
    under = sum(1 for p99 in p99s if p99 < 35.0)
    log(f"latency: p99 < 35 ms in {under} of {len(p99s)} runs (median p99 {statistics.median(p99s):.1f} ms,"
        f" worst {max(p99s):.1f} ms)")


def writer_phase(settings: Settings, engine: Engine, writer: OutboxWriter, args: argparse.Namespace) -> None:
    modes = ("coalesced", "notify-every-commit", "off")
    rates: dict[str, float | None] = {}
    for batch, threads in ((100, 1), (1, 4)):
        for mode in modes:
            with wakeup_mode(engine, mode):
                rates[mode] = writer_throughput(engine, writer, batch, threads, args.writer_seconds)
        log(f"writer (OutboxWriter.emit_many), {batch} event(s) per transaction, {threads} thread(s): "
            + ", ".join(f"{mode} {rate:,.0f} events/s" for mode, rate in rates.items()))
    for mode in modes:
        with wakeup_mode(engine, mode):
            rates[mode] = pgbench_commits(settings, clients=8, seconds=args.writer_seconds)
    log("commit path (pgbench, 8 connections, one 1 KB row per transaction): "
        + ", ".join(f"{mode} {rate:,.0f} commits/s" if rate else f"{mode} n/a (no pgbench)"
                    for mode, rate in rates.items()))


def memory_phase(settings: Settings, engine: Engine, writer: OutboxWriter, args: argparse.Namespace) -> None:
    rows = one_kb_events(writer, 1000)
    result = memory_drain(settings, engine, rows, args.memory_rows, timeout_s=900)
    samples = result["samples"]
    peak = max(rss for _, rss, _ in samples)
    marks = [samples[int(len(samples) * f)] for f in (0.1, 0.5, 0.9)] if samples else []
    log(f"memory: drained {args.memory_rows:,} rows in {result['elapsed']:.0f} s;"
        f" RSS at 10/50/90% of the run: {', '.join(f'{rss} MB ({sent:,} sent)' for _, rss, sent in marks)};"
        f" peak sampled {peak} MB")
    log(f"memory: relay says: {result['summary']}")


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="pending rows for the drain benchmark")
    parser.add_argument("--rounds", type=int, default=2, help="drain rounds (best of each side is reported)")
    parser.add_argument("--latency-seconds", type=float, default=60.0, help="length of one latency run")
    parser.add_argument("--latency-runs", type=int, default=5, help="the target holds in every run, not on average")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s for the latency benchmark")
    parser.add_argument("--writers", type=int, default=4,
                        help="writer threads of the latency benchmark (one event per transaction each; each commit"
                             " waits for PostgreSQL's WAL flush, so a few threads cannot reach 1,000/s)")
    parser.add_argument("--writer-seconds", type=float, default=8.0)
    parser.add_argument("--memory-rows", type=int, default=0, help="also drain this many rows, sampling RSS")
    parser.add_argument("--skip", action="append", default=[], choices=["drain", "ceiling", "latency", "writer"])
    args = parser.parse_args()
    log(f"machine: {describe()}; load {load()}")
    with bench_environment() as settings:
        catalog = load_catalog()
        writer = OutboxWriter(catalog, Codec(catalog, settings), settings)
        engine = database_engine(settings)
        if "drain" not in args.skip:
            drain_phase(settings, engine, writer, args)
        if "latency" not in args.skip:
            latency_phase(settings, engine, writer, args)
        if "writer" not in args.skip:
            writer_phase(settings, engine, writer, args)
        if args.memory_rows:
            memory_phase(settings, engine, writer, args)
        engine.dispose()


if __name__ == "__main__":
    main()
