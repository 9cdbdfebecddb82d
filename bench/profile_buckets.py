"""Where a process's CPU goes, from py-spy's raw (collapsed) stacks: buckets by the frames' module.

A raw line is `frame;frame;...;frame count`, root first, each frame `function (path/file.py:line)`
with py-spy's shortened paths (`faust/streams.py`, `asyncio/base_events.py`, `streams/worker.py`).
Only samples of the thread holding the GIL are recorded (py-spy --gil): the shares are shares of
the process's Python time. Work done with the GIL released (librdkafka's threads, libpq, system
calls) is in the process's CPU seconds but in no bucket; on a busy machine a GIL holder waiting
for a core is sampled as if it ran, so the sampled seconds can exceed the CPU seconds.

A sample goes to the bucket of its innermost frame that belongs to a library or to our code:
a fastavro call made by our worker is Avro, a log call made inside aiokafka is logging. The
standard library (json, socket, threading, ...) never decides, and the walk stops at asyncio's
`Handle._run` (what runs the loop, e.g. mode's worker, is not what the callback did): such a
sample is the event loop's (`other` outside asyncio). A leaf that waits (selectors, sleeps) and
mode's Service sleeps and waits (Faust's take buffer wakes through them) are `idle sleeps/timers`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

FAUST = "Faust/mode machinery"
KAFKA = "Kafka client (aiokafka, confluent-kafka)"
AVRO = "Avro (fastavro, soma codec)"
OBSERVE = "logging/metrics/tracing"
POSTGRES = "PostgreSQL (sqlalchemy, psycopg)"
REDIS = "Redis"
OURS = "our logic (streams/, outbox/, soma/)"
LOOP = "asyncio/event loop"
IDLE = "idle sleeps/timers"
OTHER = "other"
BUCKETS = (FAUST, KAFKA, AVRO, OBSERVE, POSTGRES, REDIS, OURS, LOOP, IDLE, OTHER)

# (path prefix, bucket), most specific first: our observability and codec before the rest of soma/
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("soma/observability", OBSERVE), ("streams/runtime/metrics", OBSERVE), ("streams/runtime/tracing", OBSERVE),
    ("streams/runtime/tenant_labels", OBSERVE), ("logging/", OBSERVE), ("prometheus_client/", OBSERVE),
    ("opentelemetry/", OBSERVE),
    ("soma/contracts/codec", AVRO), ("fastavro/", AVRO),
    ("mode/timers", IDLE), ("mode/utils/times", IDLE),
    ("faust/", FAUST), ("mode/", FAUST), ("venusian/", FAUST), ("croniter/", FAUST),
    ("aiokafka/", KAFKA), ("kafka/", KAFKA), ("confluent_kafka/", KAFKA),
    ("sqlalchemy/", POSTGRES), ("psycopg/", POSTGRES), ("psycopg_pool/", POSTGRES), ("psycopg_binary/", POSTGRES),
    ("redis/", REDIS),
    ("streams/", OURS), ("outbox/", OURS), ("soma/", OURS), ("bench/", OURS),
)
# leaves that wait rather than work: (path prefix, function name or None for any)
_WAITS: tuple[tuple[str, str | None], ...] = (
    ("selectors", None), ("threading", "wait"), ("asyncio/tasks", "sleep"), ("asyncio/locks", "wait"),
    ("queue", "get"),
)
# inner frames that are timers or waits whatever their module says: mode's Service.sleep/wait (the take
# buffer's `wait_for_stopped` goes through them), asyncio.sleep
_TIMER_FUNCS = {("mode/services.py", "wait_first"), ("mode/services.py", "sleep"), ("mode/services.py", "wait"),
                ("mode/services.py", "wait_for_stopped"), ("mode/utils/locks.py", "wait"),
                ("asyncio/tasks.py", "sleep")}
_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse_frame(frame: str) -> tuple[str, str]:
    """`take_events (faust/streams.py:123)` -> ('take_events', 'faust/streams.py'); unknown shapes -> (frame, '')."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    return match.group("func"), match.group("path")


def _module_path(path: str) -> str:
    """py-spy paths relative to a sys.path entry; `--full-filenames` ones cut after site-packages or the checkout."""
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    for top in ("/streams/", "/outbox/", "/soma/", "/bench/"):
        if top in path:
            return top[1:] + path.split(top, 1)[1]
    return path


def bucket_of_path(path: str) -> str | None:
    """The bucket a frame's file decides, or None (standard library and unknown files do not decide)."""
    module = _module_path(path)
    for prefix, bucket in _PREFIXES:
        if module.startswith(prefix):
            return bucket
    return None


def deciding(frames: list[str]) -> tuple[str, str]:
    """(bucket, the frame that decided it as `function (file)`) of one sample's stack (root first)."""
    if not frames:
        return OTHER, "(no frames)"
    leaf_func, leaf_path = parse_frame(frames[-1])
    leaf_module = _module_path(leaf_path)
    for prefix, func in _WAITS:
        if leaf_module.startswith(prefix) and (func is None or leaf_func == func):
            return IDLE, f"{leaf_func} ({leaf_module})"
    seen_asyncio = False
    for frame in reversed(frames):
        func, path = parse_frame(frame)
        module = _module_path(path)
        if (module, func) in _TIMER_FUNCS:
            return IDLE, f"{func} ({module})"
        if module == "asyncio/events.py" and func == "_run":
            return LOOP, f"{leaf_func} ({leaf_module})"  # a callback's boundary: above it is what runs the loop
        bucket = bucket_of_path(path)
        if bucket is not None:
            return bucket, f"{func} ({module})"
        seen_asyncio = seen_asyncio or module.startswith(("asyncio/", "uvloop/"))
    return (LOOP if seen_asyncio else OTHER), f"{leaf_func} ({leaf_module})"


def classify(frames: list[str]) -> str:
    """The bucket of one sample's stack (root first)."""
    return deciding(frames)[0]


def parse_raw(lines: Iterable[str]) -> Iterable[tuple[list[str], int]]:
    """py-spy raw output -> (frames root first, samples); lines without a count are skipped."""
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            yield [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))], int(count)


def bucket_samples(lines: Iterable[str]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for frames, count in parse_raw(lines):
        totals[classify(frames)] += count
    return totals


def top_frames(lines: Iterable[str], n: int = 6) -> list[dict[str, Any]]:
    """The `n` deciding frames with the most samples: where inside each bucket the time goes."""
    counts: Counter[tuple[str, str]] = Counter()
    for frames, count in parse_raw(lines):
        counts[deciding(frames)] += count
    total = sum(counts.values())
    return [{"bucket": bucket, "frame": frame, "share_percent": round(100 * c / total, 1)}
            for (bucket, frame), c in counts.most_common(n)]


def top_markdown(tops: Mapping[str, list[dict[str, Any]]]) -> str:
    """One line per process: its busiest deciding frames with their share of its samples."""
    return "".join(f"- {name}: " + "; ".join(f"{t['share_percent']:.0f} % `{t['frame']}` ({t['bucket']})"
                                            for t in top) + "\n" for name, top in tops.items() if top)


def _per_event_ms(cpu_s: float | None, events: int | None) -> float | None:
    return None if not events or cpu_s is None else round(1000 * cpu_s / events, 3)


def hop_row(name: str, events: int | None, cpu_s: float | None, samples: Mapping[str, int],
            sample_hz: float, idle_cpu_s: float | None = None) -> dict[str, Any]:
    """One process: its events, CPU (and CPU over as long with no load), CPU per event (all of it, and above
    idle), the GIL-held seconds sampled, each bucket's share of them."""
    total = sum(samples.values())
    above = None if cpu_s is None or idle_cpu_s is None else max(0.0, cpu_s - idle_cpu_s)
    return {"process": name, "events": events, "cpu_s": None if cpu_s is None else round(cpu_s, 2),
            "idle_cpu_s": None if idle_cpu_s is None else round(idle_cpu_s, 2),
            "cpu_ms_per_event": _per_event_ms(cpu_s, events),
            "cpu_ms_per_event_above_idle": _per_event_ms(above, events),
            "samples": total, "gil_s": round(total / sample_hz, 2),
            "share_percent": {b: round(100 * samples.get(b, 0) / total, 1) if total else 0.0 for b in BUCKETS}}


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict[str, Any]], header: str = "") -> str:
    """The table for docs/performance.md: one row per process; buckets as % of its Python (GIL-held) samples."""
    used = [b for b in BUCKETS if any(r["share_percent"].get(b) for r in rows)]
    head = ["process", "events", "CPU s", "idle CPU s", "CPU ms/event", "above idle ms/event",
            "GIL held s (sampled)", *used]
    out = [header] if header else []
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["process"], "-" if r["events"] is None else f"{r['events']:,}", _num(r["cpu_s"], 1),
                 _num(r.get("idle_cpu_s"), 1), _num(r["cpu_ms_per_event"], 2),
                 _num(r.get("cpu_ms_per_event_above_idle"), 2), f"{r['gil_s']:.1f}",
                 *(f"{r['share_percent'][b]:.0f} %" for b in used)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
