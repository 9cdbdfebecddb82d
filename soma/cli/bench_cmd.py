"""`soma bench load`: a bounded, loopback-only load run through the running platform (bench/load.py)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from soma.cli.context import console, settings

app = typer.Typer(help="Benchmarks against the running platform (loopback only).", no_args_is_help=True)


def _ms(summary: dict[str, Any], key: str) -> str:
    value = summary["latency_ms"].get(key)
    return "-" if value is None else f"{value:.1f}"


@app.command("load")
def load(
    rate: float = typer.Option(..., "--rate", help="Chat messages per second (through the outbox; at most 2000)."),
    duration: float = typer.Option(..., "--duration", help="Seconds of load (at most 300)."),
    predictor_rate: float | None = typer.Option(None, "--predictor-rate",
                                                help="Predictor updates per second (default: --rate)."),
    tool_every: int = typer.Option(10, "--tool-every", min=0, help="Every Nth message asks for a tool (0: none)."),
    pids: str | None = typer.Option(None, "--pids", help="Processes to measure, name=pid,... "
                                    "(default: found in /proc by command line and topic prefix)."),
    drain_timeout: float = typer.Option(60.0, "--drain-timeout", min=1.0, max=600.0,
                                        help="Longest wait after the load for the last rows and frames."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of tables."),
) -> None:
    """Drive chat (some with tool calls) and predictor traffic at a steady rate; report throughput,
    end-to-end latency percentiles and CPU/RSS per platform process. Exits 1 when anything was lost."""
    from bench.load import LoadRefused, LoadRun, check_target
    from bench.proc_usage import parse_pids

    s = settings()
    check_target(s, rate, duration)  # before anything connects
    try:
        chosen = parse_pids(pids) if pids else None
    except ValueError as exc:
        raise LoadRefused(str(exc)) from None
    if not as_json:
        console.print(f"bench load: {rate:g} msg/s for {duration:g}s (warm-up first) ...")
    report = LoadRun(s, rate, duration, predictor_rate=predictor_rate, tool_every=tool_every, pids=chosen,
                     drain_timeout_s=drain_timeout).run()
    data = report.as_dict()
    if as_json:
        console.print_json(json.dumps(data), indent=None)
    else:
        table = Table("path", "sent", "received", "lost", "throughput/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                      title=f"bench load: offered {rate:g} msg/s (achieved {report.achieved_chat_rate:.1f}) "
                            f"+ {report.predictor_rate:g} updates/s for {duration:g}s")
        for label, key in (("chat commit -> replica row", "chat_commit_to_replica_row"),
                           ("tool call commit -> replica row of its result",
                            "tool_call_commit_to_replica_row_of_result"),
                           ("predictor update -> global frame", "predictor_update_to_global_frame"),
                           ("(of the chat path: commit -> memory.writes)",
                            "chat_commit_to_memory_write (worker output, intermediate)")):
            item = data[key]
            table.add_row(label, str(item["sent"]), str(item["received"]), str(item["lost"]),
                          f"{item['throughput_per_s']:.1f}", _ms(item, "p50"), _ms(item, "p95"), _ms(item, "p99"),
                          _ms(item, "max"), style="red" if item["lost"] else None)
        console.print(table)
        procs = Table("process", "pid", "CPU s", "CPU %", "peak RSS MiB (run)", "VmHWM MiB", title="resource use")
        for p in data["processes"]:
            cpu = p["cpu_s"]
            procs.add_row(p["name"], str(p["pid"]), "-" if cpu is None else f"{cpu:.2f}",
                          "-" if cpu is None else f"{100 * cpu / duration:.0f}",
                          f"{p['peak_rss_mib']:.0f}", "-" if p["hwm_mib"] is None else f"{p['hwm_mib']:.0f}",
                          style=None if p["alive"] else "red")
        console.print(procs)
        console.print(f"machine: {report.machine}")
        for note in report.notes:
            console.print(f"note: {note}")
    if report.lost:
        raise typer.Exit(1)
