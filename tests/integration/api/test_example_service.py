"""examples/service.py, run as a script from outside the repository: emits, relays, consumes back, exits 0."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from soma.clients import database_engine
from soma.contracts.catalog import load_catalog
from soma.contracts.topics import ensure
from soma.settings import Settings
from tests.support.outbox_relay import own_schema
from tests.support.procs import REPO


@pytest.fixture(scope="module")
def service_db(settings: Settings) -> Iterator[Settings]:
    with own_schema(settings, "api_example") as own:  # migrated; a relay of its own schema only
        mine = own.replace(topic_prefix=f"{settings.kafka.topic_prefix}example.")
        ensure(mine, load_catalog())
        yield mine


def _run(settings: Settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(cwd / "service.py"), *args], cwd=cwd, env=settings.child_env(PYTHONPATH=""),
        capture_output=True, text=True, timeout=240, check=False,
    )


def test_the_example_service_emits_and_consumes_back(service_db: Settings, tmp_path: Path) -> None:
    shutil.copy(REPO / "examples" / "service.py", tmp_path / "service.py")  # no repo-relative path needed
    result = _run(service_db, tmp_path, "--tenant", "acme", "--timeout", "90", "--relay")
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith("example service: tenant 'acme' emitted event "), line
    assert "consumed it back" in line
    engine = database_engine(service_db)
    with engine.connect() as conn:
        notes = conn.execute(text("SELECT note, count(*) FROM example_service_notes GROUP BY note")).all()
        marks = conn.execute(text("SELECT count(*) FROM soma_dedupe")).scalar_one()
    engine.dispose()
    assert dict(notes) == {"emitted": 1, "consumed": 1}
    assert marks >= 1


def test_the_example_service_times_out_with_one_line_without_a_relay(service_db: Settings, tmp_path: Path) -> None:
    shutil.copy(REPO / "examples" / "service.py", tmp_path / "service.py")
    result = _run(service_db, tmp_path, "--tenant", "acme", "--timeout", "3")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "did not come back from Kafka within 3s" in line
    assert "relay" in line
