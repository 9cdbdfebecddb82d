"""The supervisor's state file (what `soma ps` reads)."""

from __future__ import annotations

from pathlib import Path

from soma.ops.supervisor.state import ComponentState, PlatformState, read_state, write_state


def test_state_file_round_trips_and_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "platform" / "state.json"
    state = PlatformState(123, "running", [ComponentState("relay", "ready", pid=5, restarts=2, started_at=1.0)])
    write_state(path, state)
    again = read_state(path)
    assert again is not None
    assert again.component("relay").restarts == 2
    assert again.phase == "running"
    assert again.updated_at > 0
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]
    path.write_text("{not json")
    assert read_state(path) is None
    assert read_state(tmp_path / "missing.json") is None


def test_uptime_only_while_running() -> None:
    assert ComponentState("a", pid=None, started_at=10.0).uptime_s(now=20.0) is None
    assert ComponentState("a", pid=7, started_at=10.0).uptime_s(now=25.0) == 15.0
