"""`soma bench load --rates ...`: one `LoadRun` per rate, ascending, and the files a sweep leaves.

Two targets:
- the running platform (default; what the settings point at, e.g. `soma up`): before each rate
  the sweep waits until every stream has committed all of its input (Kafka offsets,
  bench/kafka_offsets.py), then a short settle, so one rate's backlog does not load the next
  rate's window; when a backlog does not drain within the drain timeout, the higher rates are not
  run (they would measure the leftovers) and the document says so. Every rate uses fresh tenants,
  so late records of an earlier rate never count as a later rate's.
- `--private`: a fresh platform per rate (own topic prefix, schema and ports;
  soma/ops/local_platform.py), started and dropped around each rate: nothing carries over, at
  the price of a minute or so of start-up per rate.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load import LoadRun
from bench.sweep import rate_line, sweep_document
from soma.settings import Settings


@dataclass(frozen=True)
class SweepOptions:
    rates: list[float]
    duration_s: float
    predictor_rate: float | None = None  # None: as many updates/s as chat messages/s
    tool_every: int = 10
    pids: dict[str, int] | None = None
    drain_timeout_s: float = 60.0
    private: bool = False
    settle_s: float = 3.0
    logs: Path = Path(".soma/bench-logs/load")


def default_out(settings: Settings) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return settings.stack.state_dir / "bench" / f"load-{stamp}"


@contextmanager
def private_platform(logs: Path, lifetime_s: float, attempts: int = 2) -> Iterator[Settings]:
    """A fresh platform (own topic prefix, schema, free ports); started again once when it does not come up,
    since another run on the machine may take a port between choosing and binding it."""
    from soma.ops.isolation import isolated_run
    from soma.ops.local_platform import platform_settings, running_platform
    from soma.settings import load_settings

    for attempt in range(1, attempts + 1):
        with ExitStack() as stack:
            run = uuid.uuid4().hex[:6]
            try:
                base = stack.enter_context(isolated_run(load_settings(), "loadbench", run))
                settings = stack.enter_context(running_platform(platform_settings(base), logs / run,
                                                                lifetime_s=lifetime_s))
            except TimeoutError:
                if attempt == attempts:
                    raise
                continue
            yield settings
            return


def _one(settings: Settings, rate: float, opts: SweepOptions) -> dict[str, Any]:
    before = os.getloadavg()[0]
    report = LoadRun(settings, rate, opts.duration_s, predictor_rate=opts.predictor_rate, tool_every=opts.tool_every,
                     pids=None if opts.private else opts.pids, drain_timeout_s=opts.drain_timeout_s).run()
    data = report.as_dict()
    data["load_average_1m"] = [round(before, 1), round(os.getloadavg()[0], 1)]
    return data


def run_sweep(settings: Settings, opts: SweepOptions, say: Callable[[str], None]) -> dict[str, Any]:
    """Every rate of the sweep; the sweep document (bench/sweep.py)."""
    from bench.kafka_offsets import wait_drained
    from bench.machine import describe
    from soma.contracts.catalog import load_catalog

    started = datetime.now(UTC).isoformat(timespec="seconds")
    catalog = load_catalog()
    reports: list[dict[str, Any]] = []
    notes: list[str] = []
    for rate in opts.rates:
        if opts.private:
            say(f"rate {rate:g}/s: starting a private platform ...")
            with private_platform(opts.logs, opts.duration_s + opts.drain_timeout_s + 600) as private:
                data = _one(private, rate, opts)
        else:
            lag = wait_drained(settings, catalog, opts.drain_timeout_s)
            if any(lag.values()):
                notes.append(f"rates from {rate:g}/s not run: the streams still had uncommitted input after "
                             f"{opts.drain_timeout_s:g}s ({', '.join(f'{k} {v}' for k, v in lag.items() if v)}), "
                             "the backlog of the rate before")
                say(notes[-1])
                break
            time.sleep(opts.settle_s)  # the last commits' and flushes' CPU out of the next window
            data = _one(settings, rate, opts)
            data["backlog_before"] = lag
        reports.append(data)
        say(rate_line(data))
    notes.append("chat latency: memory_replica.applied_at (PostgreSQL) - writer commit time (same host clock); "
                 "frame latency: cog.global_frame record timestamp - predictor update send time")
    notes.append("cpu_percent: CPU seconds during the load window (not the drain) / duration; cpu_s includes "
                 "the drain")
    return sweep_document(reports, mode="private platform per rate" if opts.private else "running platform",
                          duration_s=opts.duration_s, machine=describe(), started_at=started, notes=notes)


def write(document: dict[str, Any], out: Path) -> tuple[Path, Path | None, str | None]:
    """sweep.json and sweep.png under `out`; (json path, png path or None, why there is no png)."""
    from bench.sweep_plot import PlotUnavailable, plot

    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "sweep.json"
    try:
        png: Path | None = plot(document, out / "sweep.png")
        missing = None
    except PlotUnavailable as exc:
        png, missing = None, str(exc)
    document["plot"] = None if png is None else str(png)
    json_path.write_text(json.dumps(document, indent=1) + "\n")
    return json_path, png, missing
