"""`soma up`: bring the platform up, in the foreground under this process or detached, and report as it goes.

The infrastructure comes first (the stack, where none is given; migrations; topics), then the
supervisor starts the components in order behind their health gates. Detached, a child
`soma up` is the supervisor and this process follows its state file until every component
is ready, the supervisor dies, or the time is up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Protocol

from soma.errors import SomaError
from soma.ops.supervisor.spec import ComponentSpec, platform_components, resolve
from soma.ops.supervisor.state import ComponentState, Paths, PlatformState, read_state, write_state
from soma.settings import Settings

log = logging.getLogger("soma.supervisor")


class Reporter(Protocol):
    """Where bring-up says what it does: progress and warnings (stderr), results (stdout)."""

    def progress(self, line: str) -> None: ...

    def warning(self, line: str) -> None: ...

    def result(self, line: str) -> None: ...


class BringupFailed(Exception):
    """The platform did not come up: `message` for one line; the end of the supervisor's log when it
    exited (`tail`, else None), or the components that were not ready in time (`late`)."""

    def __init__(self, message: str, tail: str | None = None, late: list[ComponentState] | None = None) -> None:
        super().__init__(message)
        self.message, self.tail, self.late = message, tail, late or []


def components(config: Settings) -> list[ComponentSpec]:
    """The platform's components in start order."""
    return resolve(platform_components(config))


def child_env(config: Settings) -> dict[str, str]:
    # Children run in the state dir: make a relative state dir absolute for them.
    return config.child_env(SOMA_STATE_DIR=str(config.stack.state_dir.resolve()), PYTHONUNBUFFERED="1")


def prepare(config: Settings, timeout_s: float, out: Reporter) -> None:
    """The infrastructure first: the stack (external services are only checked), migrations, topics."""
    from soma.contracts.catalog import load_catalog
    from soma.contracts.topics import ensure
    from soma.ops import migrations, stack

    for health in stack.up(config, report=out.progress, timeout_s=timeout_s):
        out.progress(f"{health.service}: healthy at {health.address} ({health.detail})")
    migrations.upgrade(config, "head")
    out.result("database at head")
    states = ensure(config, load_catalog(settings=config))
    counts: dict[str, int] = {}
    for topic_state in states:
        counts[topic_state.state] = counts.get(topic_state.state, 0) + 1
        if topic_state.state == "drift":
            out.warning(f"topics: {topic_state.topic}: drift: {topic_state.detail}")
    out.progress("topics: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))


def run_foreground(config: Settings, timeout_s: float, out: Reporter,
                   on_ready: Callable[[PlatformState], None]) -> None:
    """Prepare, then supervise the components in this process until SIGTERM/SIGINT stops them all."""
    from soma.ops.supervisor.runner import Supervisor

    paths = Paths.of(config)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.pid_file.write_text(f"{os.getpid()}\n")
    specs = components(config)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        supervisor = Supervisor(config, specs, paths, child_env(config), on_ready=on_ready)
        supervisor.publish("preparing", "stack, migrations, topics")
        try:
            prepare(config, timeout_s, out)
        except BaseException as exc:
            reason = str(exc) if isinstance(exc, SomaError) else type(exc).__name__
            write_state(paths.state_file, PlatformState(os.getpid(), "failed", supervisor.state.components, reason))
            raise
        supervisor.install_signal_handlers()
        supervisor.publish(detail="")
        supervisor.run()
    finally:
        with contextlib.suppress(OSError, ValueError):
            if int(paths.pid_file.read_text().strip()) == os.getpid():
                paths.pid_file.unlink()


def _tail(path: os.PathLike[str], lines: int = 15) -> str:
    try:
        with open(path, "rb") as handle:
            return "\n".join(handle.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_detached(config: Settings, timeout_s: float, out: Reporter) -> PlatformState:
    """Start `soma up` in the background; its state once every component is ready (`BringupFailed` if not)."""
    from soma.ops.processes import is_running

    paths = Paths.of(config)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.state_file.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "soma", "up"]
    pid = paths.supervisor().start(argv, paths.log_file, env=config.child_env(PYTHONUNBUFFERED="1"))
    out.progress(f"supervisor started, pid {pid}; log {paths.log_file}")
    deadline = time.monotonic() + timeout_s
    seen: dict[str, str] = {}
    state = None
    while time.monotonic() < deadline:
        state = read_state(paths.state_file)
        if not is_running(pid):
            detail = state.detail if state is not None and state.phase == "failed" else "see its log"
            raise BringupFailed(f"the supervisor exited during start-up: {detail} ({paths.log_file})",
                                tail=_tail(paths.log_file))
        if state is not None:
            for c in state.components:
                if seen.get(c.name) != c.state:
                    seen[c.name] = c.state
                    out.progress(f"{c.name}: {c.state}{f' ({c.detail})' if c.detail else ''}")
            enabled = [c for c in state.components if c.state != "disabled"]
            if state.phase == "running" and enabled and all(c.state == "ready" for c in enabled):
                return state
        time.sleep(0.5)
    late = [c for c in state.components if c.state not in ("ready", "disabled")] if state else []
    phase = f"still {state.phase}" if state else "no state yet"
    raise BringupFailed(f"not ready after {timeout_s:.0f}s ({phase}): "
                        f"{', '.join(c.name for c in late) or 'the supervisor'}; it keeps running: `soma ps`, "
                        "`soma down`", late=late)

