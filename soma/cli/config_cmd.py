"""`soma config set|show`: publish a live setting change on config_updates; show the effective values.

The reading and publishing live in soma/config_updates.py; these commands print.
"""

from __future__ import annotations

import json

import typer
from rich.table import Table

from soma.cli.context import console, settings

app = typer.Typer(help="Live settings: publish changes on config_updates and show the effective values.",
                  no_args_is_help=True)


@app.command("set")
def set_(
    name: str = typer.Argument(..., help="Live setting, e.g. INTEGRATOR_TEMPERATURE or ENABLE_COG_THREADS."),
    value: str = typer.Argument(..., help="New value (true/false, a number, or text); 'null' resets to the default."),
    tenant: str | None = typer.Option(None, "--tenant", help="Apply to this tenant only (default: every tenant)."),
    author: str | None = typer.Option(None, "--author", help="Who makes the change (default: the OS user)."),
) -> None:
    """Validate the value against the setting, then publish it with the next version and its checksum."""
    from soma.config_updates import publish

    event = publish(settings(), name, value, tenant=tenant, author=author)
    console.print_json(json.dumps(event), indent=None)


@app.command("show")
def show(
    tenant: str | None = typer.Option(None, "--tenant", help="Show the values in effect for this tenant."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of a table."),
) -> None:
    """The effective live settings: base settings plus the valid updates on config_updates."""
    from soma.config_updates import effective

    result = effective(settings(), tenant)
    if as_json:
        console.print_json(json.dumps({"settings": result.settings, "rejected": result.rejected}, default=str),
                           indent=None)
        return
    table = Table("setting", "value", "source", title=f"live settings{f' (tenant {tenant})' if tenant else ''}")
    for row in result.settings:
        table.add_row(row["name"], str(row["value"]), row["source"])
    console.print(table)
    for item in result.rejected:
        console.print(f"rejected: {item['name']} ({item['tenant'] or '*'}): {item['reason']}")
