"""The bench layer's commands, named in soma/cli/__init__.py's table and loaded when they run.

`soma demo`: a short scenario through the running platform, shown hop by hop (bench/demo/).
`soma bench load`: a bounded, loopback-only load run, or a sweep of rates (bench/load.py, bench/sweep*.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from soma.cli.context import console, err_console, settings
from soma.settings import Settings

app = typer.Typer(help="Benchmarks against the running platform (loopback only).", no_args_is_help=True)


def demo(
    hop_timeout: float = typer.Option(30.0, "--hop-timeout", min=1.0, max=300.0,
                                      help="Longest wait for each hop, in seconds."),
    enable_cog: bool = typer.Option(True, "--enable-cog/--no-enable-cog",
                                    help="Switch ENABLE_COG_THREADS on for the demo tenant (a tenant-scoped "
                                         "live update); off: leave it as configured."),
    enable_sleep: bool = typer.Option(True, "--enable-sleep/--no-enable-sleep",
                                      help="Switch ENABLE_SLEEP on for the demo tenant and run the sleep step "
                                           "(deep for a few seconds, then the TTL wake); off: skip it."),
    skip_preflight: bool = typer.Option(False, "--skip-preflight", help="Do not check the processes first."),
) -> None:
    """Drive two tenants through the running platform and show what happened at each hop.

    Chat with a tool call, leader changes and segments, a live config change, a sleep cycle, an admin replay.
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
    run = Demo(s, hop_timeout_s=hop_timeout, enable_cog=enable_cog, enable_sleep=enable_sleep,
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
    rate: float | None = typer.Option(None, "--rate", help="Chat messages per second (through the outbox; at most "
                                                          "2000): one run."),
    rates: str | None = typer.Option(None, "--rates", help="A sweep: rates separated by commas, e.g. "
                                                          "50,100,200,300,500 (at most 10), one run each."),
    duration: float = typer.Option(..., "--duration", help="Seconds of load (per rate; at most 300)."),
    predictor_rate: float | None = typer.Option(None, "--predictor-rate",
                                                help="Predictor updates per second (default: the chat rate)."),
    tool_every: int = typer.Option(10, "--tool-every", min=0, help="Every Nth message asks for a tool (0: none)."),
    pids: str | None = typer.Option(None, "--pids", help="Processes to measure, name=pid,... "
                                    "(default: found in /proc by command line and topic prefix)."),
    drain_timeout: float = typer.Option(60.0, "--drain-timeout", min=1.0, max=600.0,
                                        help="Longest wait after the load for the last rows and frames (and, in a "
                                             "sweep, for the streams' backlog before the next rate)."),
    private: bool = typer.Option(False, "--private", help="Sweep: a fresh private platform per rate (own topics, "
                                 "schema, ports) instead of the running one."),
    out: Path | None = typer.Option(None, "--out", help="Sweep: directory for sweep.json and sweep.png "
                                    "(default: SOMA_STATE_DIR/bench/load-<UTC time>)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of tables."),
) -> None:
    """Drive chat (some with tool calls) and predictor traffic at a steady rate, or at each rate of a sweep;
    report throughput, end-to-end latency percentiles and CPU/RSS per platform process. A sweep writes
    its JSON and a PNG plot and names the highest rate whose every p99 < 1 s (and < 500 ms) with nothing
    lost. Exits 1 when anything was lost (a single rate) or no rate held 1 s (a sweep)."""
    from bench.load import LoadRefused, check_target
    from bench.proc_usage import parse_pids

    s = settings()
    if (rate is None) == (rates is None):
        raise LoadRefused("bench load: give either --rate R or --rates R1,R2,...")
    try:
        chosen = parse_pids(pids) if pids else None
    except ValueError as exc:
        raise LoadRefused(str(exc)) from None
    if rates is not None:
        from bench.sweep import parse_rates

        sweep = parse_rates(rates)
        for each in sweep:
            check_target(s, each, duration)  # before anything connects
        _sweep(s, sweep, duration, predictor_rate, tool_every, chosen, drain_timeout, private, out, as_json)
    elif rate is not None:
        check_target(s, rate, duration)
        _single(s, rate, duration, predictor_rate, tool_every, chosen, drain_timeout, as_json)

def _sweep(s: Settings, rates: list[float], duration: float, predictor_rate: float | None, tool_every: int,
           pids: dict[str, int] | None, drain_timeout: float, private: bool, out: Path | None,
           as_json: bool) -> None:
    from bench.sweep import summary_key, verdict_lines
    from bench.sweep_run import SweepOptions, default_out, run_sweep, write

    opts = SweepOptions(rates, duration, predictor_rate=predictor_rate, tool_every=tool_every, pids=pids,
                        drain_timeout_s=drain_timeout, private=private)
    def say(line: str) -> None:
        (err_console if as_json else console).print(line, soft_wrap=True, highlight=False)

    say(f"bench load sweep: {', '.join(f'{r:g}' for r in rates)} msg/s, {duration:g}s each "
        f"({'a private platform per rate' if private else 'the running platform'}) ...")
    document = run_sweep(s, opts, say)
    json_path, png, missing = write(document, out or default_out(s))
    if as_json:
        console.print_json(json.dumps(document), indent=None)
    else:
        for line in verdict_lines(document):
            console.print(line, style="bold")
        console.print(f"machine: {document['machine']}")
        for note in document["notes"]:
            console.print(f"note: {note}")
    say(f"wrote {json_path}" + (f" and {png}" if png else ""))
    if missing:
        err_console.print(missing)
    if document["summary"][summary_key(1000.0)] is None:
        raise typer.Exit(1)


def _single(s: Settings, rate: float, duration: float, predictor_rate: float | None, tool_every: int,
            pids: dict[str, int] | None, drain_timeout: float, as_json: bool) -> None:
    from bench.load import LoadRun
    from bench.sweep import PATHS

    if not as_json:
        console.print(f"bench load: {rate:g} msg/s for {duration:g}s (warm-up first) ...")
    report = LoadRun(s, rate, duration, predictor_rate=predictor_rate, tool_every=tool_every, pids=pids,
                     drain_timeout_s=drain_timeout).run()
    data = report.as_dict()
    if as_json:
        console.print_json(json.dumps(data), indent=None)
    else:
        table = Table("path", "sent", "received", "lost", "throughput/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                      title=f"bench load: offered {rate:g} msg/s (achieved {report.achieved_chat_rate:.1f}) "
                            f"+ {report.predictor_rate:g} updates/s for {duration:g}s")
        for label, key in (*PATHS, ("(of the chat path: commit -> memory.writes)",
                                    "chat_commit_to_memory_write (worker output, intermediate)")):
            item = data[key]
            table.add_row(label, str(item["sent"]), str(item["received"]), str(item["lost"]),
                          f"{item['throughput_per_s']:.1f}", _ms(item, "p50"), _ms(item, "p95"), _ms(item, "p99"),
                          _ms(item, "max"), style="red" if item["lost"] else None)
        console.print(table)
        procs = Table("process", "pid", "CPU s (load)", "CPU % (load)", "CPU s (+drain)", "peak RSS MiB (run)",
                      "VmHWM MiB", title="resource use")
        for p in data["processes"]:
            cpu, load_cpu = p["cpu_s"], p["cpu_load_s"]
            procs.add_row(p["name"], str(p["pid"]), "-" if load_cpu is None else f"{load_cpu:.2f}",
                          "-" if load_cpu is None else f"{100 * load_cpu / duration:.0f}",
                          "-" if cpu is None else f"{cpu:.2f}",
                          f"{p['peak_rss_mib']:.0f}", "-" if p["hwm_mib"] is None else f"{p['hwm_mib']:.0f}",
                          style=None if p["alive"] else "red")
        console.print(procs)
        console.print(f"machine: {report.machine}")
        for note in report.notes:
            console.print(f"note: {note}")
    if report.lost:
        raise typer.Exit(1)


@app.command("profile")
def profile(
    rate: float = typer.Option(100.0, "--rate", help="Chat messages per second (and as many predictor updates)."),
    duration: float = typer.Option(30.0, "--duration", help="Seconds of load, sampled (at most 120)."),
    private: bool = typer.Option(False, "--private", help="Profile a fresh private platform instead of the running "
                                 "one."),
    pids: str | None = typer.Option(None, "--pids", help="Processes to sample, name=pid,... (default: found)."),
    out: Path | None = typer.Option(None, "--out", help="Directory for profile.json, profile.md and py-spy's raw "
                                    "stacks (default: SOMA_STATE_DIR/bench/profile-<UTC time>)."),
) -> None:
    """Sample every platform process with py-spy under a fixed load: per process, CPU per event and where it
    goes (Faust/mode, Kafka client, Avro, logging/metrics/tracing, PostgreSQL, Redis, our logic, event loop,
    timers). Needs py-spy (the bench extra) and ptrace rights."""
    from datetime import UTC, datetime

    from bench.load import LoadRefused
    from bench.proc_usage import parse_pids
    from bench.profile_buckets import markdown, top_markdown
    from bench.profile_run import check_profile
    from bench.profile_run import profile as run_profile

    s = settings()
    check_profile(s, rate, duration)
    try:
        chosen = parse_pids(pids) if pids else None
    except ValueError as exc:
        raise LoadRefused(str(exc)) from None
    where = out or s.stack.state_dir / "bench" / f"profile-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    console.print(f"bench profile: {rate:g} msg/s + {rate:g} updates/s for {duration:g}s "
                  f"({'a private platform' if private else 'the running platform'}) ...")
    if private:
        from bench.sweep_run import private_platform

        with private_platform(Path(".soma/bench-logs/profile"), duration + 600) as own:
            document = run_profile(own, rate, duration, where)
    else:
        document = run_profile(s, rate, duration, where, pids=chosen)
    console.print(markdown(document["hops"]), soft_wrap=True, highlight=False, markup=False)
    console.print(top_markdown(document["top_frames"]), soft_wrap=True, highlight=False, markup=False)
    console.print(f"machine: {document['machine']}; load average {document['load_average_1m']}; "
                  f"lost {document['lost']}", soft_wrap=True)
    for note in document["notes"]:
        console.print(f"note: {note}", soft_wrap=True, highlight=False)
    console.print(f"wrote {where}/profile.json and profile.md")
