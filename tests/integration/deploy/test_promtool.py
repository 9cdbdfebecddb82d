"""`promtool check rules` / `check config` / `test rules` on deploy/prometheus (skipped without Go)."""

from __future__ import annotations

from pathlib import Path

import pytest

from soma.ops.processes import run_bounded
from soma.settings import load_settings
from tests.support.promtool import promtool_binary

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> Path:
    binary = promtool_binary(load_settings().stack.state_dir)
    if binary is None:
        pytest.skip("promtool not available (no Go toolchain, or its build failed)")
    return binary


def test_promtool_accepts_the_alert_rules(promtool: Path) -> None:
    result = run_bounded([str(promtool), "check", "rules", str(DEPLOY / "alerts.yaml")], timeout_s=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_accepts_the_scrape_config(promtool: Path) -> None:
    result = run_bounded([str(promtool), "check", "config", str(DEPLOY / "prometheus.yml")], timeout_s=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_on_the_series_they_are_meant_for(promtool: Path) -> None:
    result = run_bounded([str(promtool), "test", "rules", str(DEPLOY / "alerts_test.yaml")], timeout_s=60,
                         cwd=DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr
