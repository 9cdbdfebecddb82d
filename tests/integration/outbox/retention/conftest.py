"""Retention's tests run in a schema of their own (a prune acts on the whole table), emptied before each test."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from soma.settings import Settings
from tests.support.outbox_relay import truncate


@pytest.fixture(scope="module")
def outbox_db(own_db: Settings) -> Settings:
    return own_db


@pytest.fixture(autouse=True)
def empty_outbox(engine: Engine) -> None:
    truncate(engine)
