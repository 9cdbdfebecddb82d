"""Outbox retention benchmark: prune throughput, and what pruning costs the relay, in the same run.

    python bench/outbox_prune.py                      # 200k old sent rows, 50k to publish, 2 rounds (~3 min)
    python bench/outbox_prune.py --sent 50000 --pending 20000 --rounds 1     # a quick look

1. Prune: --sent 1 KB rows sent two days ago, deleted by `outbox.retention.prune` (retention
   1 day) with --batch rows per transaction and no pause: rows/s, and the windows it took.
2. Relay under pruning: --sent old sent rows and --pending rows to publish; the relay drains
   the pending rows (in this process, default settings, its own prune off) while a pruner
   deletes the old rows (the relay's setting: a pause as long as each window), vs the same
   drain with no pruner, alternating in each round. Relay events/s both ways, rows pruned meanwhile.
3. The index not built: mark-sent (the relay's UPDATE, 1,000 rows a statement) with and without a
   partial index on sent_at of sent rows, which would let a prune find old rows without walking
   the primary key: microseconds per row both ways, and WAL and buffers of one statement (EXPLAIN).

Everything runs against the local stack on loopback, in a schema and topic prefix of its own,
dropped at the end. Each line reports the load average: compare sides of one run, not runs.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from bench.machine import describe
from bench.relay_rows import bench_environment, copy_rows, one_kb_events, truncate, vacuum
from outbox.relay.claim import MARK_SENT, mark_sent
from outbox.relay.service import Relay
from outbox.retention import PruneRequest, prune
from outbox.writer import OutboxWriter
from soma.clients import database_engine
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.settings import Settings

DAY = 86400.0
# The rows loaded so far become sent two days ago (created a minute before that).
AGE_ALL = text(
    """
UPDATE outbox_events SET status = 'sent', sent_at = now() - interval '2 days',
       created_at = now() - interval '2 days 1 minute', "partition" = 0, "offset" = id
"""
)
SENT_INDEX = "CREATE INDEX bench_sent_at ON outbox_events (sent_at) WHERE status = 'sent'"


def log(line: str) -> None:
    print(f"{line}  [load {' '.join(f'{v:.1f}' for v in os.getloadavg())}]", flush=True)


def load_rows(engine: Engine, rows: list[dict[str, Any]], sent: int, pending: int) -> None:
    """`sent` old sent rows, then `pending` rows to publish (higher ids, as in life)."""
    truncate(engine)
    if sent:
        copy_rows(engine, rows, repeat=max(1, sent // len(rows)))
        with engine.begin() as conn:
            conn.execute(AGE_ALL)
    if pending:
        fresh = [dict(row, dedupe_key=f"p-{row['dedupe_key']}") for row in rows]
        copy_rows(engine, fresh, repeat=max(1, pending // len(rows)))
    vacuum(engine)


def prune_phase(engine: Engine, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    for batch in args.batch:
        load_rows(engine, rows, args.sent, 0)
        result = prune(engine, PruneRequest(DAY, None, batch=batch, budget_s=600.0, pause=0.0))
        log(f"prune: {result.sent} rows in {result.elapsed_s:.1f}s = {result.sent / result.elapsed_s:,.0f} rows/s"
            f" (batch {batch}, {result.windows} windows, {result.elapsed_s / result.windows * 1000:.1f} ms each)")


def drain(settings: Settings, engine: Engine, pending: int, pruner: bool) -> tuple[float, int]:
    """Relay events/s draining the pending rows; rows a concurrent pruner deleted meanwhile."""
    relay = Relay(settings, serve_metrics=False)
    relay.start()
    done = threading.Event()
    pruned: list[int] = []

    def run_pruner() -> None:
        while not done.is_set():
            pruned.append(prune(engine, PruneRequest(DAY, None, budget_s=5.0), stop=done.is_set).sent)

    thread = threading.Thread(target=run_pruner) if pruner else None
    started = time.monotonic()
    if thread is not None:
        thread.start()
    try:
        stats = relay.run(drain=True)
    finally:
        done.set()
        if thread is not None:
            thread.join(60)
    if stats.published < pending or stats.last_commit_at is None:
        raise SystemExit(f"outbox_prune: relay published {stats.published}/{pending}")
    return stats.published / (stats.last_commit_at - started), sum(pruned)


def relay_phase(settings: Settings, engine: Engine, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    quiet = settings.replace(outbox_retention=None)  # the relay's own prune off: the pruner thread is the variable
    rates: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for pruner in ((False, True) if round_ % 2 == 0 else (True, False)):
            load_rows(engine, rows, args.sent, args.pending)
            rate, pruned = drain(quiet, engine, args.pending, pruner)
            rates[pruner].append(rate)
            log(f"relay round {round_ + 1}, {'with' if pruner else 'without'} pruner: {rate:,.0f} events/s"
                + (f", {pruned} rows pruned meanwhile" if pruner else ""))
    without, with_ = statistics.median(rates[False]), statistics.median(rates[True])
    log(f"relay median: {without:,.0f} events/s without pruning, {with_:,.0f} with ({with_ / without:.2f}x)")


def explain_mark(engine: Engine, ids: list[int]) -> tuple[int, int, int]:
    """WAL records, WAL bytes and shared buffer hits+reads of one mark-sent statement (EXPLAIN ANALYZE: it runs)."""
    now = repr(time.time())
    params = {"ids": ",".join(map(str, ids)), "partitions": ",".join("0" for _ in ids),
              "offsets": ",".join(map(str, ids)), "acked_at": ",".join(now for _ in ids)}
    with engine.begin() as conn:
        plan = "\n".join(str(r[0]) for r in conn.execute(text("EXPLAIN (ANALYZE, BUFFERS, WAL) " + MARK_SENT.text),
                                                         params))
    wal = re.search(r"WAL: records=(\d+)(?: fpi=\d+)? bytes=(\d+)", plan)
    buffers = re.search(r"Buffers: shared hit=(\d+)(?: read=(\d+))?", plan)
    if wal is None or buffers is None:
        raise SystemExit(f"outbox_prune: no WAL/buffer figures in the plan:\n{plan}")
    return int(wal.group(1)), int(wal.group(2)), int(buffers.group(1)) + int(buffers.group(2) or 0)


def mark_cost(engine: Engine, rows: list[dict[str, Any]], count: int, indexed: bool) -> float:
    """Microseconds per row of mark-sent over `count` pending rows, 1,000 a statement (the first one
    under EXPLAIN, logged: WAL and buffers do not depend on the machine's load)."""
    load_rows(engine, rows, 0, count)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX IF EXISTS bench_sent_at"))
        if indexed:
            conn.execute(text(SENT_INDEX))
        ids = [int(i) for i in conn.scalars(text("SELECT id FROM outbox_events ORDER BY id"))]
    records, wal_bytes, buffers = explain_mark(engine, ids[:1000])
    log(f"mark-sent of 1,000 rows {'with' if indexed else 'without'} a sent_at index: {records} WAL records,"
        f" {wal_bytes} WAL bytes, {buffers} shared buffers")
    ids = ids[1000:]
    now = time.time()
    started = time.perf_counter()
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        with engine.begin() as conn:
            mark_sent(conn, chunk, [0] * len(chunk), chunk, [now] * len(chunk))
    elapsed = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX IF EXISTS bench_sent_at"))
    return elapsed / len(ids) * 1e6


def index_phase(engine: Engine, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    costs: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for indexed in ((False, True) if round_ % 2 == 0 else (True, False)):
            costs[indexed].append(mark_cost(engine, rows, args.pending, indexed))
    without, with_ = statistics.median(costs[False]), statistics.median(costs[True])
    log(f"mark-sent: {without:.1f} us/row without a sent_at index, {with_:.1f} with (+{with_ / without - 1:.0%});"
        f" runs {[round(c, 1) for c in costs[False]]} vs {[round(c, 1) for c in costs[True]]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sent", type=int, default=200_000, help="old sent rows (whole multiples of 10,000)")
    parser.add_argument("--pending", type=int, default=50_000, help="rows the relay publishes (multiples of 10,000)")
    parser.add_argument("--batch", type=int, action="append", help="prune batch sizes (default 1000 and 5000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the relay and index phases")
    parser.add_argument("--skip", action="append", default=[], choices=["prune", "relay", "index"])
    args = parser.parse_args()
    args.batch = args.batch or [1000, 5000]
    log(f"machine: {describe()}")
    with bench_environment() as settings:
        catalog = load_catalog()
        writer = OutboxWriter(catalog, Codec(catalog, settings), settings)
        rows = one_kb_events(writer, 10_000)
        engine = database_engine(settings)
        try:
            if "prune" not in args.skip:
                prune_phase(engine, rows, args)
            if "relay" not in args.skip:
                relay_phase(settings, engine, rows, args)
            if "index" not in args.skip:
                index_phase(engine, rows, args)
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
