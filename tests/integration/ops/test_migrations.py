"""Alembic is the only way the schema changes: upgrade, downgrade, and models == migrations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.schema import CreateSchema, DropSchema

from outbox.models import metadata
from soma.clients import database_engine
from soma.dedupe.postgres import metadata as dedupe_metadata
from soma.ops.migrations import alembic_config
from soma.settings import Settings, load_settings
from streams.storage.replica import metadata as streams_metadata


@pytest.fixture
def empty_schema(stack: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A schema of its own, so upgrade/downgrade do not disturb the run's tables."""
    name = f"mig_{uuid.uuid4().hex[:8]}"
    engine = database_engine(stack)
    with engine.begin() as conn:
        conn.execute(CreateSchema(name))
    # soma_migrations/env.py reads the settings like every process does: from the environment.
    monkeypatch.setenv("SOMA_DATABASE_SCHEMA", name)
    try:
        yield load_settings(database_schema=name)
    finally:
        with engine.begin() as conn:
            conn.execute(DropSchema(name, cascade=True, if_exists=True))
        engine.dispose()


def _alembic() -> Config:
    return alembic_config()  # the packaged migrations, configured in code as `soma db` does


def test_upgrade_head_then_downgrade_base(empty_schema: Settings) -> None:
    engine = database_engine(empty_schema)
    command.upgrade(_alembic(), "head")
    tables = set(inspect(engine).get_table_names())
    assert {"outbox_events", "admin_audit", "memory_replica", "soma_dedupe", "alembic_version"} <= tables
    command.downgrade(_alembic(), "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()


def test_models_and_migrations_agree(empty_schema: Settings) -> None:
    command.upgrade(_alembic(), "head")
    engine = database_engine(empty_schema)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), [metadata, streams_metadata, dedupe_metadata])
    engine.dispose()
    assert diff == []
