"""`soma demo`: a short scenario through the running platform, shown hop by hop (see demo_scenario.py)."""

from __future__ import annotations

import typer

from soma.cli.context import console, err_console, settings


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
    from soma.cli.demo_scenario import Demo, preflight, where_to_look
    from soma.cli.hops import hop_table, missed, verdict

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
