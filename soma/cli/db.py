"""`soma db upgrade|downgrade|current`: Alembic migrations with the project's settings (soma/ops/migrations.py)."""

from __future__ import annotations

import typer

from soma.cli.context import console, settings

app = typer.Typer(help="Database migrations (Alembic): the only way the schema changes.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from soma.ops import migrations

    migrations.upgrade(settings(), revision)
    console.print(f"database at {revision}")


@app.command("downgrade")
def downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base or -1.")) -> None:
    """Revert migrations down to REVISION."""
    from soma.ops import migrations

    migrations.downgrade(settings(), revision)
    console.print(f"database at {revision}")


@app.command("current")
def current() -> None:
    """Show the database's current revision."""
    from soma.ops import migrations

    migrations.current(settings())


@app.command("revision")
def revision(
    message: str = typer.Argument(..., help="What the migration does, e.g. 'outbox retention'."),
    rev_id: str = typer.Option(..., "--rev-id", help="The next number, e.g. 0009 (revisions are numbered)."),
    autogenerate: bool = typer.Option(False, "--autogenerate", help="Fill it from the models vs the database."),
) -> None:
    """Write a new migration file (developers: into the source tree of an editable install)."""
    from soma.ops import migrations

    console.print(f"wrote {migrations.revision(settings(), message, rev_id, autogenerate)}")
