"""What a per-tenant rate limit costs the relay: its CPU while a limited tenant's rows wait, vs idle.

    python -m bench.relay_rate [--rate 2] [--rows 200] [--seconds 20]

`soma outbox relay` runs as its own process (SOMA_OUTBOX_RELAY_TENANT_RATES=<tenant>=<rate>), in a
schema and topic prefix of its own on the local stack (bench/relay_rows.py). Phase 1: nothing pending,
the relay's CPU over `--seconds` (idle, LISTEN). Phase 2: `--rows` rows of the limited tenant only,
more than it may publish in that time, so the relay spends the whole window waiting for tokens; its CPU,
and the rows it published (should be about rate x seconds). A busy loop would show as most of a core.
Prints % of one core and the load average (the machine may be shared: compare the phases of one run).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from sqlalchemy import text

from bench.relay_latency import cpu_seconds, relay_subprocess
from bench.relay_rows import TENANTS, TOPIC, bench_environment, copy_rows, one_kb_events, truncate
from outbox.writer import OutboxWriter
from soma.clients import database_engine
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.settings import Settings

SENT = text("SELECT count(*) FROM outbox_events WHERE status = 'sent'")


def measure(settings: Settings, seconds: float, warmup_s: float = 3.0) -> tuple[float, int]:
    """The relay's CPU (% of one core) over `seconds` after `warmup_s`, and the rows it sent meanwhile."""
    engine = database_engine(settings)
    log_file = Path(f"/tmp/relay-rate-bench-{os.getpid()}.log")  # noqa: S108 - the relay's log, for a look
    try:
        with relay_subprocess(settings, log_file) as proc:
            time.sleep(warmup_s)
            with engine.connect() as conn:
                sent_before = int(conn.execute(SENT).scalar_one())
            cpu_before, began = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            cpu, took = cpu_seconds(proc.pid) - cpu_before, time.monotonic() - began
            with engine.connect() as conn:
                sent = int(conn.execute(SENT).scalar_one()) - sent_before
    finally:
        engine.dispose()
    return 100.0 * cpu / took, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=2.0, help="the limited tenant's rows/s")
    parser.add_argument("--rows", type=int, default=200, help="its pending rows (more than rate x seconds)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window of each phase")
    args = parser.parse_args()
    tenant = TENANTS[0]
    with bench_environment() as base:
        settings = base.replace(outbox_relay_tenant_rates=f"{tenant}={args.rate:g}")
        engine = database_engine(settings)
        catalog = load_catalog()
        writer = OutboxWriter(catalog, Codec(catalog, settings), settings)
        truncate(engine)
        idle_pct, _ = measure(settings, args.seconds)
        rows = [r for r in one_kb_events(writer, args.rows * len(TENANTS)) if r["tenant_id"] == tenant]
        copy_rows(engine, rows[: args.rows])
        held_pct, sent = measure(settings, args.seconds)
        engine.dispose()
    load = os.getloadavg()[0]
    print(f"relay idle:                               {idle_pct:5.2f} % of a core   (load {load:.2f})")
    print(f"relay, only {tenant} at {args.rate:g} rows/s waiting: {held_pct:5.2f} % of a core, "
          f"{sent} rows sent in {args.seconds:g} s (limit: {args.rate * args.seconds:.0f} + burst) on {TOPIC}")


if __name__ == "__main__":
    main()
