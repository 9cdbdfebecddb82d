from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from soma.errors import StackError
from soma.ops.processes import Daemon, is_running, run_bounded, terminate

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
