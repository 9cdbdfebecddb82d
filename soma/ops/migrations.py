"""Alembic with the project's settings: the only way the database schema changes (`soma db`, `soma up`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from soma.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

# alembic.ini sits at the repository root, beside the migrations/ it points at.
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_config() -> Config:
    """The Alembic configuration (its env.py loads the settings); `SettingsError` outside a source checkout."""
    from alembic.config import Config

    from soma.errors import SettingsError

    if not ALEMBIC_INI.exists():
        raise SettingsError(f"no alembic.ini at {ALEMBIC_INI}: run soma from a source checkout")
    config = Config(str(ALEMBIC_INI))
    config.attributes["configure_logger"] = False
    return config


def _run(settings: Settings, name: str, *args: str) -> None:
    # The caller loaded `settings` first, so a malformed setting fails as one line before Alembic starts.
    from alembic import command

    from soma.clients import database_errors

    with database_errors(settings):  # an unreachable database: one line naming the setting
        getattr(command, name)(alembic_config(), *args)


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Apply migrations up to `revision`."""
    _run(settings, "upgrade", revision)


def downgrade(settings: Settings, revision: str) -> None:
    """Revert migrations down to `revision`."""
    _run(settings, "downgrade", revision)


def current(settings: Settings) -> None:
    """Print the database's current revision (Alembic writes it to stdout)."""
    _run(settings, "current")
