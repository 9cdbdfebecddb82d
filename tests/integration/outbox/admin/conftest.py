"""Tenants for the admin tests: each test module's (the tokens' tenants) and each test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.support.outbox_admin import forget, tenants


@pytest.fixture(scope="module")
def names(run_id: str, engine: Engine) -> Iterator[tuple[str, str]]:
    """Two tenants of the module (the ones `with_tokens` scopes); their rows are deleted at the end."""
    pair = tenants(run_id)
    yield pair
    forget(engine, pair)


@pytest.fixture
def pair(run_id: str, engine: Engine) -> Iterator[tuple[str, str]]:
    """Two tenants of this test only."""
    names = tenants(run_id)
    yield names
    forget(engine, names)
