"""Bounded child processes: start with a pid file, stop by pid (SIGTERM, grace, SIGKILL).

Nothing here looks processes up by name: a pid file records what we started, and the
pid's command line is checked against an expected marker before any signal is sent, so
a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from soma.errors import StackError

if TYPE_CHECKING:
    from soma.settings import Settings

SOMA = [sys.executable, "-m", "soma"]  # the soma command, as a child of this interpreter


@dataclass(frozen=True)
class Daemon:
    """A background process identified by its pid file and a marker in its command line."""

    name: str
    pid_file: Path
    marker: str

    def pid(self) -> int | None:
        """The running pid from the pid file, or None when not running (stale files are removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if is_running(pid, self.marker):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, argv: Sequence[str], log_file: Path, env: Mapping[str, str] | None = None) -> int:
        """Start `argv` detached (own session), output to `log_file`, and record its pid."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def stop(self, grace_s: float = 15.0) -> bool:
        """Stop the process if it runs; returns True when something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        terminate(pid, grace_s)
        self.pid_file.unlink(missing_ok=True)
        return True


def _cmdline(pid: int) -> str | None:
    # A process caught mid-exec shows an empty command line for a moment: look again briefly.
    for _ in range(50):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if raw:
            return raw.replace(b"\0", b" ").decode(errors="replace")
        time.sleep(0.01)
    return ""


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state letter follows the parenthesised command name.
    return stat.rpartition(")")[2].split()[0] == "Z"


def is_running(pid: int, marker: str | None = None) -> bool:
    """True when `pid` is alive (not a zombie) and, if given, its command line contains `marker`."""
    if _is_zombie(pid):  # also true when the pid does not exist
        return False
    cmdline = _cmdline(pid)
    if cmdline is None:
        return False
    return marker is None or marker in cmdline


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def terminate(pid: int, grace_s: float, group: bool = False) -> None:
    """SIGTERM `pid`, wait up to `grace_s`, then SIGKILL it; returns once it is gone.

    With `group`, signal its whole process group (a child started in its own session
    leads one), so helpers it spawned do not outlive it.
    """
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            _reap(pid)
            if not is_running(pid):
                return
            time.sleep(0.1)
    raise StackError(f"process {pid} survived SIGKILL")


def run_bounded(
    argv: Sequence[str],
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` to completion with a hard timeout; on timeout its whole session is killed."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise StackError(f"{argv[0]}: not found on PATH") from exc
    try:
        out, err = proc.communicate(input_text, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        # The child leads its own session: kill the group so grandchildren go too.
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise StackError(f"{Path(argv[0]).name} timed out after {timeout_s:.0f}s: {err.strip()[-300:]}") from None
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def stop_process(pid: int, wait_s: float) -> bool:
    """SIGTERM `pid` and wait up to `wait_s` for it to go; SIGKILL it if it does not. True when it was killed."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and is_running(pid):
        time.sleep(0.1)
    if not is_running(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def kill_leftover(pid: int, marker: str) -> bool:
    """SIGKILL `pid` and its process group when it still runs with `marker` in its command line; True if so.

    For what a dead or killed supervisor left behind: its children lead their own groups.
    """
    if not is_running(pid, marker):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def run_soma(settings: Settings, *args: str, timeout_s: float = 120.0, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the `soma` command as a bounded child with these settings (and `env`) in its environment.

    It runs in this process's working directory, so relative settings (SOMA_STATE_DIR) mean the same there.
    """
    return run_bounded([*SOMA, *args], timeout_s=timeout_s, env=settings.child_env(**env))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@contextmanager
def background(
    argv: Sequence[str], log_file: Path, env: Mapping[str, str], max_lifetime_s: float = 600.0,
    grace_s: float = 10.0, cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running child (e.g. a `faust worker`) in its own process group, output to `log_file`.

    At exit: SIGTERM to the group, `grace_s`, then SIGKILL. A watchdog SIGKILLs the group
    once it is `max_lifetime_s` old, so even a hung caller cannot leave it behind.
    """
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=dict(env), cwd=cwd, start_new_session=True,
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
    """Poll `predicate` until it holds; `TimeoutError` naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not reached within {timeout_s}s")
