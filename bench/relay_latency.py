"""The relay's commit-to-ack latency at a steady write rate (bench/relay_bench.py's latency mode).

`soma outbox relay` runs as its own process (default settings); writer threads in this process
commit one 1 KB event per transaction at a steady rate, spread over the bench tenants. Latency
is a row's client commit time to its delivery report (`sent_at`, taken by the relay from the same
clock), so it holds the wake-up, the claim, the produce, librdkafka's linger and the broker's ack.
The relay's CPU over the run comes from /proc (user + system, all its threads).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench.relay_rows import TENANTS, TOPIC, truncate
from outbox.writer import OutboxWriter
from soma.ops.processes import SOMA
from soma.settings import Settings

TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def relay_subprocess(settings: Settings, log_file: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    with log_file.open("wb") as out:
        proc = subprocess.Popen([*SOMA, "outbox", "relay", *args], stdout=out, stderr=subprocess.STDOUT,
                                env=settings.child_env(SOMA_OUTBOX_RELAY_METRICS_PORT="0"),
                                start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def steady_latency(settings: Settings, engine: Engine, writer: OutboxWriter, rate: float, seconds: float,
                   threads: int = 4) -> dict[str, float]:
    """One run: p50/p99/max commit-to-ack (ms), rows left unsent, and the relay's CPU (cores)."""
    truncate(engine)
    commits: dict[str, float] = {}
    lock = threading.Lock()
    start_at = time.time() + 2.0

    def write(worker: int) -> None:
        interval = threads / rate
        n = 0
        while True:
            due = start_at + worker / rate + n * interval
            if due - start_at > seconds:
                return
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            key = f"lat-{worker}-{n}"
            tenant = TENANTS[n % len(TENANTS)]
            event = {"session_id": f"s-{worker}", "sequence": n, "role": "user", "content": "x" * 900}
            with Session(engine) as session, session.begin():
                writer.emit(session, TOPIC, event, tenant=tenant, dedupe_key=key)
            with lock:
                commits[key] = time.time()
            n += 1

    log_file = Path(f"/tmp/relay-bench-{os.getpid()}.log")  # noqa: S108 - the relay's log, for a look
    with relay_subprocess(settings, log_file) as proc:
        time.sleep(1.5)
        cpu_before, cpu_started = cpu_seconds(proc.pid), time.monotonic()
        workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(seconds + 30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if not conn.execute(text("SELECT count(*) FROM outbox_events WHERE status <> 'sent'")).scalar():
                    break
            time.sleep(0.2)
        relay_cpu = (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - cpu_started)
        proc.terminate()
        proc.wait(60)
    with engine.connect() as conn:
        sent = {k: (float(s), float(c)) for k, s, c in conn.execute(text(
            "SELECT dedupe_key, extract(epoch FROM sent_at), extract(epoch FROM created_at)"
            " FROM outbox_events WHERE status = 'sent'"))}
    latencies = sorted((sent[k][0] - commit) * 1000 for k, commit in commits.items() if k in sent)
    insert_to_ack = sorted((s - c) * 1000 for s, c in sent.values())
    # The writers fall behind on a busy machine: the rate they reached, first to last commit.
    span = max(commits.values()) - min(commits.values()) if len(commits) > 1 else seconds
    achieved = len(commits) / max(span, 1e-3)
    return {
        "events": len(commits), "achieved_rate": achieved, "unsent": len(commits) - len(latencies),
        "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "max": latencies[-1],
        "insert_p50": percentile(insert_to_ack, 50), "insert_p99": percentile(insert_to_ack, 99),
        "relay_cpu": relay_cpu,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def percentile(values: list[float], pct: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(pct * 10) - 1] if len(values) > 1 else values[0]
