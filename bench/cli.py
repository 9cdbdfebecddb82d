"""The bench layer's commands, named in soma/cli/__init__.py's table and loaded when they run.

`soma demo`: a short scenario through the running platform, shown hop by hop (bench/demo/).
`soma bench load`: a bounded, loopback-only load run through the running platform (bench/load.py).
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from soma.cli.context import console, err_console, settings

app = typer.Typer(help="Benchmarks against the running platform (loopback only).", no_args_is_help=True)


def demo(
    hop_timeout: float = typer.Option(30.0, "--hop-timeout", min=1.0, max=300.0,
                                      help="Longest wait for each hop, in seconds."),
    enable_cog: bool = typer.Option(True, "--enable-cog/--no-enable-cog",
                                    help="Switch ENABLE_COG_THREADS on for the demo tenant (a tenant-scoped "
                                         "live update); off: leave it as configured."),
    skip_preflight: bool = typer.Option(False, "--skip-preflight", help="Do not check the processes first."),
) -> None:
    """Drive two tenants through the running platform and show what happened at each hop.

    Chat with a tool call, leader changes and segments, a live config change, an admin replay.
    Needs the relay, the admin API (a SOMA_ADMIN_TOKENS token with the admin scope) and the five
    streams running with these settings (`soma up`). Exits 1 naming any hop that did not happen in time.
    """
    from bench.demo.endpoints import preflight, where_to_look
    from bench.demo.hops import hop_table, missed, verdict
    from bench.demo.scenario import Demo

    s = settings()
    if not skip_preflight:
        checks = preflight(s)
        if missed(checks):
            console.print(hop_table(checks, title="soma demo: the platform is not up"))
            console.print("[red]start it first: soma up (or see README, Usage)[/red]")
            raise typer.Exit(1)
    run = Demo(s, hop_timeout_s=hop_timeout, enable_cog=enable_cog,
               report=lambda hop: err_console.print(f"  {hop.status:<7} {hop.step}: {hop.hop}", style="dim"))
    console.print(f"soma demo: tenants {run.acme} and {run.globex}")
    hops = run.run()
    console.print(hop_table(hops))
    line = verdict(hops)
    console.print(line, style="bold red" if missed(hops) else "bold green")
    console.print("where to look:")
    for text in where_to_look(s, run.acme, run.globex):
        console.print(f"  {text}")
    if missed(hops):
        raise typer.Exit(1)


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
