"""`soma bench profile`: where each hop's CPU goes under a fixed load.

One `LoadRun` (chat through the outbox + predictor updates) against the running platform or a
private one; for its load window every platform process is sampled by py-spy (non-blocking, so
the processes are never paused), and the records each stream handled are counted from Kafka end
offsets of its inputs (the relay's: the chat rows written). Per process: CPU seconds in the
window (/proc), CPU per event, and the share of each bucket (bench/profile_buckets.py).
py-spy needs ptrace rights over the processes (root, or CAP_SYS_PTRACE).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import LoadRefused, LoadRun
from bench.profile_buckets import bucket_samples, hop_row, markdown, top_frames, top_markdown
from bench.spy import SAMPLE_HZ, Spy, py_spy
from bench.sweep import lost
from soma.contracts.catalog import Catalog
from soma.settings import Settings

MAX_PROFILE_S = 120.0
NOTE = ("share_percent: % of the process's py-spy samples of the thread holding the GIL, per bucket; gil_s: those "
        "samples in seconds (on a busy machine this includes time a GIL holder waited for a core, so it can exceed "
        "cpu_s); cpu_s: /proc CPU seconds of all threads (librdkafka's too) in the load window; idle_cpu_s: the "
        "same process's CPU over a window as long with no load, measured just before (the fixed cost); "
        "cpu_ms_per_event_above_idle: (cpu_s - idle_cpu_s) / events")


@dataclass
class SpyProbe:
    """py-spy on every process for the load window, and the stream inputs' end offsets at both ends."""

    settings: Settings
    catalog: Catalog
    duration_s: float
    out: Path
    spies: dict[str, Spy] = field(default_factory=dict)
    idle_s: float = 10.0
    idle_cpu_per_s: dict[str, float] = field(default_factory=dict)  # the baseline: CPU/s with no load
    offsets_start: dict[str, int] = field(default_factory=dict)
    offsets_end: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def _topics(self) -> list[str]:
        from bench.kafka_offsets import inputs
        from soma.ops.supervisor.spec import STREAMS

        return sorted({t for s in STREAMS for t in inputs(self.catalog, s.name)})

    def _idle(self, pids: dict[str, int]) -> None:
        """CPU per second of each process over `idle_s` with no load (after the warm-up): the fixed cost."""
        from bench.proc_usage import cpu_seconds

        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        time.sleep(self.idle_s)
        for name, pid in pids.items():
            start, end = before[name], cpu_seconds(pid)
            if start is not None and end is not None:
                self.idle_cpu_per_s[name] = (end - start) / self.idle_s

    def start(self, pids: dict[str, int]) -> None:
        from bench.kafka_offsets import end_offsets

        if self.idle_s > 0:
            self._idle(pids)
        self.offsets_start = end_offsets(self.settings, self.catalog, self._topics())
        self.out.mkdir(parents=True, exist_ok=True)
        until = time.monotonic() + self.duration_s
        for name, pid in pids.items():
            if not name.startswith("bench-driver"):
                self.spies[name] = Spy(name, pid, self.out, until)
                self.spies[name].start()

    def stop(self) -> None:
        from bench.kafka_offsets import end_offsets

        self.offsets_end = end_offsets(self.settings, self.catalog, self._topics())
        for spy in self.spies.values():
            spy.join(timeout_s=30)
            self.errors.extend(spy.errors)

    def events(self, process: str, chat_rows: int) -> int | None:
        """Records the process handled in the window: its inputs' new records; the relay's are the chat rows."""
        from bench.kafka_offsets import inputs

        if process == "relay":
            return chat_rows
        if not process.startswith("stream-"):
            return None
        return sum(self.offsets_end.get(t, 0) - self.offsets_start.get(t, 0)
                   for t in inputs(self.catalog, process.removeprefix("stream-")))


def check_profile(settings: Settings, rate: float, duration_s: float) -> None:
    """`LoadRefused` in one line unless the profile is bounded, local and py-spy is there."""
    from bench.load import check_target

    if not 0 < duration_s <= MAX_PROFILE_S:
        raise LoadRefused(f"bench profile: --duration must be in (0, {MAX_PROFILE_S:.0f}] seconds, got {duration_s:g}")
    check_target(settings, rate, duration_s)
    py_spy()


def profile(settings: Settings, rate: float, duration_s: float, out: Path, *,
            pids: dict[str, int] | None = None) -> dict[str, Any]:
    """Run the load with the probe; the profile document (also written to `out`/profile.json and .md)."""
    from soma.contracts.catalog import load_catalog

    check_profile(settings, rate, duration_s)
    probe = SpyProbe(settings, load_catalog(), duration_s, out)
    run = LoadRun(settings, rate, duration_s, pids=pids, probes=[probe])
    before = os.getloadavg()[0]
    report = run.run().as_dict()
    load_average = [round(before, 1), round(os.getloadavg()[0], 1)]
    rows = []
    tops: dict[str, list[dict[str, Any]]] = {}
    for proc in report["processes"]:
        name = proc["name"]
        if name.startswith("bench-driver"):
            continue
        lines = probe.spies[name].lines() if name in probe.spies else []
        samples = bucket_samples(lines)
        tops[name] = top_frames(lines)
        idle = probe.idle_cpu_per_s.get(name)
        rows.append(hop_row(name, probe.events(name, run.chat_sent), proc["cpu_load_s"], samples, SAMPLE_HZ,
                            idle_cpu_s=None if idle is None else idle * duration_s))
    document = {"kind": "soma bench profile", "rate": rate, "predictor_rate": report["predictor_rate"],
                "duration_s": duration_s, "idle_window_s": probe.idle_s, "machine": report["machine"],
                "load_average_1m": load_average, "sample_hz": SAMPLE_HZ, "hops": rows, "top_frames": tops,
                "latency_ms": {k: report[k]["latency_ms"] for k in ("chat_commit_to_replica_row",
                                                                    "predictor_update_to_global_frame")},
                "lost": lost(report),
                "notes": [*probe.errors, NOTE]}
    (out / "profile.json").write_text(json.dumps(document, indent=1) + "\n")
    (out / "profile.md").write_text(markdown(rows) + "\n" + top_markdown(tops))
    return document
