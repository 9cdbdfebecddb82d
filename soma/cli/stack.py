"""`soma stack up|down|status`: the local Kafka, PostgreSQL and Redis."""

from __future__ import annotations

import typer
from rich.table import Table

from soma.cli.context import console, err_console, settings

app = typer.Typer(help="Provision, start, stop and check the local Kafka / PostgreSQL / Redis stack.",
                  no_args_is_help=True)

TimeoutOption = typer.Option(180.0, "--timeout", help="Seconds to wait for every service to be healthy.")
BrokersOption = typer.Option(
    None, "--brokers", min=1, max=5,
    help="Kafka brokers to run (default SOMA_STACK_KAFKA_BROKERS, 1); N > 1 needs N host:port in SOMA_KAFKA_BOOTSTRAP.",
)


def _report(line: str) -> None:
    err_console.print(f"[dim]{line}[/dim]")


@app.command("up")
def up(timeout: float = TimeoutOption, brokers: int | None = BrokersOption) -> None:
    """Start whatever is not already running, then wait until all three are healthy."""
    from soma.ops import stack

    config = settings() if brokers is None else settings().replace(stack_kafka_brokers=brokers)
    table = Table("service", "address", "health", title="soma stack")
    for health in stack.up(config, report=_report, timeout_s=timeout):
        table.add_row(health.service, health.address, f"[green]healthy[/green] ({health.detail})")
    console.print(table)


@app.command("status")
def status() -> None:
    """Check each service for real (round trip, SELECT 1, PING); exit 1 if any is unhealthy."""
    from soma.ops import stack

    rows = stack.status(settings())
    table = Table("service", "health", "address", "managed by", title="soma stack")
    for row in rows:
        health = "[green]healthy[/green]" if row.healthy else "[red]down[/red]"
        table.add_row(row.service, health, row.address, row.managed_by)
    console.print(table)
    for row in rows:
        if not row.healthy:
            err_console.print(row.detail, soft_wrap=True)
    if not all(row.healthy for row in rows):
        raise typer.Exit(1)


@app.command("down")
def down() -> None:
    """Stop what `soma stack up` started (by pid file); leaves services it did not start alone."""
    from soma.ops import stack

    stack.down(settings(), report=_report)
    console.print("soma stack: down")
