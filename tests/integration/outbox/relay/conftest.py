"""The relay's tests each run in a schema of their own (see `own_db`)."""

from __future__ import annotations

import pytest

from soma.settings import Settings


@pytest.fixture(scope="module")
def outbox_db(own_db: Settings) -> Settings:
    return own_db
