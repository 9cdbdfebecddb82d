"""The supervisor loop with stand-in components (small HTTP servers): gating, restart, ordered stop."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from soma.ops.processes import is_running
from soma.ops.supervisor.runner import Supervisor
from soma.ops.supervisor.spec import ComponentSpec
from soma.ops.supervisor.state import Paths, PlatformState, read_state
from soma.settings import load_settings
from tests.support.procs import REPO, wait_for

FAKE = str(REPO / "tests" / "support" / "fake_component.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake(name: str, warmup_s: float, *deps: str, mode: str = "") -> ComponentSpec:
    port = _free_port()
    argv = (sys.executable, FAKE, str(port), str(warmup_s), *([mode] if mode else []))
    return ComponentSpec(name, argv, f"http://127.0.0.1:{port}", "fake_component.py", deps)


def _state(paths: Paths) -> PlatformState:
    state = read_state(paths.state_file)
    assert state is not None
    return state


@contextmanager
def supervised(tmp_path: Path, specs: list[ComponentSpec]) -> Iterator[tuple[Supervisor, Paths, threading.Thread]]:
    settings = load_settings(supervisor_poll_s=0.2, supervisor_backoff_base_s=0.2, supervisor_stop_grace_s=3.0,
                             health_check_timeout_s=0.5)
    paths = Paths(tmp_path / "platform")
    supervisor = Supervisor(settings, specs, paths, settings.child_env())
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: read_state(paths.state_file) is not None, timeout_s=10, what="state file")
        yield supervisor, paths, thread
    finally:
        supervisor.request_stop()
        thread.join(timeout=30)
        for c in _state(paths).components:  # never leave one behind, whatever failed
            if c.pid is not None and is_running(c.pid, c.marker):
                os.kill(c.pid, signal.SIGKILL)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[tuple[Supervisor, Paths, threading.Thread]]:
    specs = [fake("base", 1.0), fake("dependent", 0.0, "base"), fake("stubborn", 0.0, mode="stubborn")]
    with supervised(tmp_path, specs) as running:
        yield running


def test_gates_restarts_and_stops_in_reverse(run: tuple[Supervisor, Paths, threading.Thread]) -> None:
    supervisor, paths, thread = run
    wait_for(lambda: supervisor.state.phase == "running"
             and all(c.state == "ready" for c in _state(paths).components), timeout_s=30, what="all ready")
    state = _state(paths)
    base, dependent = state.component("base"), state.component("dependent")
    assert base.started_at is not None
    assert dependent.started_at is not None
    assert dependent.started_at - base.started_at >= 1.0, "started before what it depends on was ready"
    assert Path(base.log_file).exists()

    # A crashed child is restarted (after the backoff) and becomes ready again.
    victim = dependent.pid
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: (c := _state(paths).component("dependent")).restarts == 1 and c.state == "ready"
             and c.pid != victim, timeout_s=30, what="dependent restarted")
    assert _state(paths).component("dependent").last_exit == -signal.SIGKILL

    # Stop: SIGTERM, and SIGKILL for the one ignoring it once the grace is over; all within it.
    pids = [c.pid for c in _state(paths).components]
    began = time.monotonic()
    supervisor.request_stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert time.monotonic() - began < 3.0 + 2.0
    assert all(pid is not None and not is_running(pid) for pid in pids)
    final = _state(paths)
    assert final.phase == "stopped"
    assert {c.state for c in final.components} == {"stopped"}
    assert final.component("stubborn").last_exit == -signal.SIGKILL
    assert final.component("base").last_exit == 0


def test_a_stalled_component_is_restarted(tmp_path: Path) -> None:
    with supervised(tmp_path, [fake("stuck", 0.5, mode="stall")]) as (_, paths, _thread):
        wait_for(lambda: read_state(paths.state_file) is not None, timeout_s=10, what="state file")
        wait_for(lambda: _state(paths).component("stuck").restarts >= 1, timeout_s=30, what="stalled one restarted")
        assert _state(paths).component("stuck").last_exit == 0  # it was asked to stop (SIGTERM), not killed
