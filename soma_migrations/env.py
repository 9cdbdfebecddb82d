"""Alembic environment: connects with the project's settings (and schema, when one is set)."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import MetaData

from outbox.models import metadata as outbox_metadata
from soma.clients import database_engine
from soma.dedupe.postgres import metadata as dedupe_metadata
from soma.settings import load_settings
from streams.storage.replica import metadata as streams_metadata

config = context.config
# soma.ops.migrations builds the configuration in code (no file); a hand-made alembic.ini may configure logging.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

settings = load_settings()

# Tables are declared next to the code that owns them; each owner's MetaData joins here.
target_metadata: list[MetaData] = [outbox_metadata, streams_metadata, dedupe_metadata]


def run_migrations_offline() -> None:
    context.configure(
        url=settings.sqlalchemy_url().render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = database_engine(settings)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
