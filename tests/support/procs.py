"""Bounded subprocesses for tests: every child has a hard timeout and is SIGKILLed at the latest at teardown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from soma.ops.processes import is_running, run_bounded, terminate
from soma.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SOMA = [sys.executable, "-m", "soma"]


def run_soma(settings: Settings, *args: str, timeout_s: float = 120.0, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the `soma` CLI as a real subprocess with these settings in its environment."""
    return run_bounded([*SOMA, *args], timeout_s=timeout_s, env=settings.child_env(**env), cwd=REPO)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@contextmanager
def background(
    argv: Sequence[str], settings: Settings, log_file: Path, max_lifetime_s: float = 600.0, grace_s: float = 10.0
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running child (e.g. a `faust worker`) in its own process group.

    At exit: SIGTERM to the group, `grace_s`, then SIGKILL. A watchdog SIGKILLs the group
    once it is `max_lifetime_s` old, so even a hung test cannot leave it behind.
    """
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=settings.child_env(), cwd=REPO, start_new_session=True,
        )
        watchdog = threading.Timer(max_lifetime_s, _kill_group, args=(proc.pid,))
        watchdog.daemon = True
        watchdog.start()
        try:
            yield proc
        finally:
            watchdog.cancel()
            if is_running(proc.pid):
                terminate(proc.pid, grace_s, group=True)
            proc.wait(timeout=10)


def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not reached within {timeout_s}s")
