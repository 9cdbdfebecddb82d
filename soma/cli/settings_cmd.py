"""`soma settings`: the effective settings, secrets masked."""

from __future__ import annotations

from rich.table import Table

from soma.cli.context import console, settings


def show() -> None:
    """Print the effective settings (environment and .env applied; secrets masked)."""
    table = Table("setting", "value", title="effective settings")
    for name, value in settings().safe_view().items():
        table.add_row(name, value)
    console.print(table)
