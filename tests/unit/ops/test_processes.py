from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from soma.errors import StackError
from soma.ops.processes import (
    Daemon,
    background,
    is_running,
    kill_leftover,
    run_bounded,
    stop_process,
    terminate,
    wait_for,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
IGNORE_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
STUBBORN = [sys.executable, "-c", f"{IGNORE_SIGTERM}; print('ready', flush=True); time.sleep(60)"]


def test_daemon_records_pid_and_stops_it(tmp_path: Path) -> None:
    daemon = Daemon("sleeper", tmp_path / "s.pid", "time.sleep(60)")
    pid = daemon.start(SLEEPER, tmp_path / "s.log")
    assert daemon.pid() == pid
    assert daemon.stop(grace_s=5)
    assert not is_running(pid)
    assert not (tmp_path / "s.pid").exists()
    assert not daemon.stop()


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen(SLEEPER)
    try:
        (tmp_path / "k.pid").write_text(f"{other.pid}\n")
        daemon = Daemon("kafka", tmp_path / "k.pid", "kafka.Kafka")
        assert daemon.pid() is None  # alive, but not ours: its command line lacks the marker
        assert not daemon.stop()
        assert other.poll() is None
        assert not (tmp_path / "k.pid").exists()
    finally:
        other.kill()
        other.wait()


def test_terminate_escalates_to_sigkill_after_the_grace_period() -> None:
    proc = subprocess.Popen(STUBBORN, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    terminate(proc.pid, grace_s=1.0)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 5, "SIGTERM is ignored: only SIGKILL after the grace period ends it"
    assert not is_running(proc.pid)


def test_run_bounded_kills_on_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(StackError, match="timed out"):
        run_bounded(SLEEPER, timeout_s=1.0)
    assert time.monotonic() - started < 5


def test_run_bounded_missing_program_is_a_clear_error() -> None:
    with pytest.raises(StackError, match="no-such-program: not found"):
        run_bounded(["no-such-program"], timeout_s=5)


def _stubborn() -> subprocess.Popen[str]:
    proc = subprocess.Popen(STUBBORN, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_stop_process_says_whether_it_had_to_kill() -> None:
    polite = subprocess.Popen(SLEEPER)
    assert not stop_process(polite.pid, wait_s=5)
    polite.wait(timeout=5)
    stubborn = _stubborn()
    assert stop_process(stubborn.pid, wait_s=0.5)
    stubborn.wait(timeout=5)


def test_kill_leftover_only_kills_a_pid_that_still_shows_its_marker() -> None:
    proc = _stubborn()
    try:
        assert not kill_leftover(proc.pid, "kafka.Kafka")
        assert proc.poll() is None
        assert kill_leftover(proc.pid, "SIG_IGN")
        proc.wait(timeout=5)
    finally:
        proc.kill()


def test_a_background_child_is_gone_when_its_block_ends(tmp_path: Path) -> None:
    with background(SLEEPER, tmp_path / "bg.log", {}, grace_s=2.0) as proc:
        wait_for(lambda: is_running(proc.pid), timeout_s=5, what="child up")
    assert not is_running(proc.pid)
    with pytest.raises(TimeoutError, match=r"never not reached within 0\.2s"):
        wait_for(lambda: False, timeout_s=0.2, interval_s=0.05, what="never")
