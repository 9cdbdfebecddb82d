"""What every stream integration module needs: topics ensured, the replica migrated, a port range of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from soma.settings import Settings
from tests.support.procs import run_soma
from tests.support.streams import free_port_base

LOGS = Path(".soma/test-logs/streams")  # the streams' own logs, one file per process


@pytest.fixture(scope="module")
def topics_ensured(settings: Settings) -> Settings:
    """The run's settings with every topic ensured and a free web port range for this module's streams."""
    ensured = run_soma(settings, "topics", "ensure", timeout_s=120)
    assert ensured.returncode == 0, ensured.stderr
    return settings.replace(streams_web_port_base=free_port_base())


@pytest.fixture(scope="module")
def migrated(topics_ensured: Settings) -> Settings:
    """`topics_ensured` plus the database schema (the replicator's `memory_replica`) at head."""
    result = run_soma(topics_ensured, "db", "upgrade", "head", timeout_s=120)
    assert result.returncode == 0, result.stderr
    return topics_ensured
