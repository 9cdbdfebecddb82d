"""`soma db upgrade|downgrade|current`: Alembic migrations with the project's settings."""

from __future__ import annotations

from pathlib import Path

import typer
from alembic.config import Config

from soma.cli.context import console, settings

app = typer.Typer(help="Database migrations (Alembic): the only way the schema changes.", no_args_is_help=True)

# alembic.ini sits at the repository root, beside the migrations/ it points at.
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def _config() -> Config:

    from soma.errors import SettingsError

    if not ALEMBIC_INI.exists():
        raise SettingsError(f"no alembic.ini at {ALEMBIC_INI}: run soma from a source checkout")
    settings()  # a malformed setting fails here, as one line, before Alembic starts
    config = Config(str(ALEMBIC_INI))
    config.attributes["configure_logger"] = False
    return config


@app.command("upgrade")
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from alembic import command

    from soma.clients import database_errors

    with database_errors(settings()):
        command.upgrade(_config(), revision)
    console.print(f"database at {revision}")


@app.command("downgrade")
def downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base or -1.")) -> None:
    """Revert migrations down to REVISION."""
    from alembic import command

    from soma.clients import database_errors

    with database_errors(settings()):
        command.downgrade(_config(), revision)
    console.print(f"database at {revision}")


@app.command("current")
def current() -> None:
    """Show the database's current revision."""
    from alembic import command

    from soma.clients import database_errors

    with database_errors(settings()):
        command.current(_config())
