"""Alembic with the project's settings: the only way the database schema changes (`soma db`, `soma up`).

The migrations ship in the wheel as the `soma_migrations` package (its env.py joins the tables of
outbox and streams, which the core never imports); the Alembic configuration is built here, in
code, with `script_location` at that package's directory, so no alembic.ini is needed anywhere.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from soma.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_PACKAGE = "soma_migrations"  # named, not imported: the core does not depend on the layers above
FILE_TEMPLATE = "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s"  # 20261122_0001_outbox_events_...


def script_location() -> Path:
    """The installed migrations directory (env.py, versions/); `SettingsError` when it is missing."""
    from soma.errors import SettingsError

    try:
        location = resources.files(MIGRATIONS_PACKAGE)
    except ModuleNotFoundError:
        raise SettingsError(f"the {MIGRATIONS_PACKAGE} package is not installed: reinstall soma-events") from None
    if not isinstance(location, Path) or not (location / "env.py").is_file():  # e.g. imported from a zip
        raise SettingsError(f"{MIGRATIONS_PACKAGE}: no env.py in {location} (the package must be installed as files)")
    return location


def alembic_config() -> Config:
    """The Alembic configuration (its env.py loads the settings from the environment)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", FILE_TEMPLATE)
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


def revision(settings: Settings, message: str, rev_id: str, autogenerate: bool = False) -> Path:
    """Write a new migration into the versions directory (a developer's editable install); returns its path."""
    from alembic import command

    from soma.clients import database_errors

    with database_errors(settings):  # --autogenerate compares the models with the database
        script = command.revision(alembic_config(), message=message, rev_id=rev_id, autogenerate=autogenerate)
    first = script[0] if isinstance(script, list) else script
    return Path(first.path) if first is not None else script_location() / "versions"
