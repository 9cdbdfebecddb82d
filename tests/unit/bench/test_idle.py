"""bench.idle: the idle cost in % of one core, the table, the supervisor pid from the state file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.idle import IdleCost, supervisor_pid, table


def test_core_percent_is_cpu_seconds_over_wall_seconds() -> None:
    assert IdleCost("relay", 1, 0.3, 60.0).core_pct == 0.5
    assert IdleCost("relay", 1, 0.3, 0.0).core_pct == 0.0


def test_the_table_sums_the_platform_and_shows_the_baseline_and_load() -> None:
    costs = [IdleCost("supervisor", 1, 0.06, 60.0), IdleCost("stream-worker", 2, 0.12, 60.0)]
    text = table(costs, IdleCost("baseline", 3, 0.0, 60.0), (1.5, 1.0, 0.5))
    assert "platform total" in text
    assert "    0.30" in text.splitlines()[3]  # 0.18 s over 60 s
    assert "baseline (bare sleep)" in text
    assert "load average 1.50 1.00 0.50" in text


def test_supervisor_pid_comes_from_the_state_file_when_alive(tmp_path: Path) -> None:
    assert supervisor_pid(tmp_path) is None
    (tmp_path / "platform").mkdir()
    state = tmp_path / "platform" / "state.json"
    state.write_text(json.dumps({"supervisor_pid": os.getpid()}))
    assert supervisor_pid(tmp_path) == os.getpid()
    state.write_text("{not json")
    assert supervisor_pid(tmp_path) is None
