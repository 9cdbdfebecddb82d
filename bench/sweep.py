"""A load sweep's results: one `LoadReport.as_dict()` per rate, folded into what a reader needs.

Pure: no Kafka, no platform. `bench/sweep_run.py` produces the per-rate reports, this module
judges them (the highest rate whose every p99 stays under a limit with nothing lost), shapes the
JSON document a sweep writes, and the one line per rate the command prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.load import MAX_RATE, LoadRefused

MAX_RATES = 10  # a sweep is at most this many runs (each capped by MAX_DURATION_S)
LIMITS_MS = (1000.0, 500.0)

# (label, key of LoadReport.as_dict()): the paths every p99 verdict looks at
PATHS: tuple[tuple[str, str], ...] = (
    ("chat commit -> replica row", "chat_commit_to_replica_row"),
    ("tool call commit -> replica row of its result", "tool_call_commit_to_replica_row_of_result"),
    ("predictor update -> global frame", "predictor_update_to_global_frame"),
)
SHORT = {"chat_commit_to_replica_row": "chat", "tool_call_commit_to_replica_row_of_result": "tool",
         "predictor_update_to_global_frame": "frame"}


def parse_rates(text: str) -> list[float]:
    """`50,100,200` -> [50.0, 100.0, 200.0], ascending and distinct; `LoadRefused` naming the problem."""
    rates: list[float] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            rate = float(part)
        except ValueError:
            raise LoadRefused(f"bench load: --rates takes numbers separated by commas, got {part!r}") from None
        if not 0 < rate <= MAX_RATE:
            raise LoadRefused(f"bench load: every rate must be in (0, {MAX_RATE:.0f}] messages/s, got {rate:g}")
        rates.append(rate)
    if not rates:
        raise LoadRefused("bench load: --rates is empty")
    if len(set(rates)) > MAX_RATES:
        raise LoadRefused(f"bench load: at most {MAX_RATES} rates in a sweep, got {len(set(rates))}")
    return sorted(set(rates))


def p99_ms(report: dict[str, Any], key: str) -> float | None:
    """The path's p99 in ms; None when nothing of it arrived (nothing sent, e.g. no tool calls, or all lost)."""
    value = report[key]["latency_ms"].get("p99")
    return None if value is None else float(value)


def lost(report: dict[str, Any]) -> int:
    return sum(int(report[key]["lost"]) for _, key in PATHS)


def holds(report: dict[str, Any], limit_ms: float) -> bool:
    """Nothing lost and every measured path's p99 under `limit_ms`."""
    p99s = [p for p in (p99_ms(report, key) for _, key in PATHS) if p is not None]
    return lost(report) == 0 and bool(p99s) and max(p99s) < limit_ms  # lost covers "sent, none arrived"


def highest_rate(reports: Sequence[dict[str, Any]], limit_ms: float) -> float | None:
    """The highest offered rate that holds `limit_ms`; None when no rate does."""
    passing = [float(r["rate"]) for r in reports if holds(r, limit_ms)]
    return max(passing) if passing else None


def cpu_percent(report: dict[str, Any]) -> dict[str, float]:
    """{process: % of one core during the load window} (processes whose CPU could be read)."""
    out = {}
    for proc in report["processes"]:
        cpu = proc.get("cpu_load_s")
        if cpu is not None and report["duration_s"]:
            out[proc["name"]] = round(100 * cpu / report["duration_s"], 1)
    return out


def summary_key(limit_ms: float) -> str:
    return f"highest_rate_every_p99_under_{limit_ms:.0f}_ms_nothing_lost"


def sweep_document(reports: Sequence[dict[str, Any]], *, mode: str, duration_s: float, machine: str,
                   started_at: str, notes: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON a sweep writes: settings, one entry per rate (the full report plus CPU %), the verdicts."""
    return {
        "kind": "soma bench load sweep",
        "started_at": started_at,
        "mode": mode,
        "duration_s": duration_s,
        "machine": machine,
        "rates": [{**r, "lost": lost(r), "cpu_percent": cpu_percent(r),
                   "p99_ms": {SHORT[key]: p99_ms(r, key) for _, key in PATHS}} for r in reports],
        "summary": {summary_key(limit): highest_rate(reports, limit) for limit in LIMITS_MS},
        "notes": list(notes),
    }


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def rate_line(report: dict[str, Any]) -> str:
    """One line per rate: p50/p99/max of each path, lost, load average, CPU per process."""
    parts = [f"rate {report['rate']:g}/s (achieved {report['achieved_chat_rate']:g}) "
             f"+ {report['predictor_rate']:g} updates/s:"]
    for _, key in PATHS:
        lat = report[key]["latency_ms"]
        parts.append(f"{SHORT[key]} {_fmt_ms(lat.get('p50'))}/{_fmt_ms(lat.get('p99'))}/{_fmt_ms(lat.get('max'))}"
                     f" lost {report[key]['lost']};")
    load = report.get("load_average_1m")
    if load:
        parts.append(f"load avg {load[0]}-{load[1]};")
    cpu = ", ".join(f"{name} {pct:g}%" for name, pct in cpu_percent(report).items())
    return " ".join(parts) + (f"\n  CPU (of one core, during the load): {cpu}" if cpu else "")


def verdict_lines(document: dict[str, Any]) -> list[str]:
    lines = []
    for limit in LIMITS_MS:
        best = document["summary"][summary_key(limit)]
        lines.append(f"highest rate with every p99 < {_fmt_ms(limit)} and nothing lost: "
                     f"{'none' if best is None else f'{best:g} msg/s'}")
    return lines
