"""Test harness: unit tests need nothing; integration tests get the real local stack.

The session fixture `stack` checks Kafka, PostgreSQL and Redis for real and, when any is
down, starts them through `soma stack up` (and stops what it started at the end, unless
`--keep-stack`). Each run gets its own topic prefix and PostgreSQL schema, dropped at the end,
so runs never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from soma.errors import InfrastructureUnavailable
from soma.observability.health import CHECKS
from soma.ops.isolation import isolated_run
from soma.settings import Settings, load_settings
from tests.support.procs import run_soma

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--keep-stack", action="store_true", help="leave a stack this run started running")
    parser.addoption("--restart-runs", type=int, default=1, metavar="N",
                     help="run each crash-recovery test (the `restart_run` fixture) N times in a row")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "restart_run" in metafunc.fixturenames:
        runs = max(1, int(metafunc.config.getoption("restart_runs")))
        metafunc.parametrize("restart_run", range(1, runs + 1), ids=lambda n: f"run{n}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def _all_healthy(settings: Settings) -> bool:
    try:
        for check in CHECKS.values():
            check(settings)
    except InfrastructureUnavailable:
        return False
    return True


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return load_settings(kafka_timeout_s=5.0)


@pytest.fixture(scope="session")
def stack(base_settings: Settings, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """The real stack, healthy. Started here (bounded) when it is not already running."""
    started = False
    if not _all_healthy(base_settings):
        result = run_soma(base_settings, "stack", "up", timeout_s=1200)
        if result.returncode != 0:
            pytest.fail(f"soma stack up failed:\n{result.stdout}\n{result.stderr}")
        started = True
    yield base_settings
    if started and not request.config.getoption("--keep-stack"):
        run_soma(base_settings, "stack", "down", timeout_s=120)


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def settings(stack: Settings, run_id: str) -> Iterator[Settings]:
    """Settings isolated to this run: topic prefix `test.<run>.`, PostgreSQL schema `test_<run>`."""
    with isolated_run(stack, "test", run_id, kafka_timeout_s=stack.kafka.timeout_s) as isolated:
        yield isolated


@pytest.fixture
def unique_topic(settings: Settings) -> str:
    """A physical topic name no other test uses (under this run's prefix)."""
    return settings.topic_name(f"t.{uuid.uuid4().hex[:10]}")
