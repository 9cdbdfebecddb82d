"""Fixtures every outbox integration test shares: the outbox's tables, and an engine on them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from soma.clients import database_engine
from soma.settings import Settings
from tests.support.outbox_relay import migrate, own_schema


@pytest.fixture(scope="module")
def outbox_db(settings: Settings) -> Settings:
    """The run's settings, their schema migrated (the relay's tests override it with `own_db`)."""
    migrate(settings)
    return settings


@pytest.fixture(scope="module")
def own_db(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """A migrated schema of the test module's own, dropped after it.

    A relay claims every due row of its schema, so a module that runs one keeps its rows apart.
    """
    with own_schema(settings, request.module.__name__.rpartition(".")[2].removeprefix("test_")) as own:
        yield own


@pytest.fixture(scope="module")
def engine(outbox_db: Settings) -> Iterator[Engine]:
    engine = database_engine(outbox_db)
    yield engine
    engine.dispose()
