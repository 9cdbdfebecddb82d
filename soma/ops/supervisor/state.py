"""Where a supervisor keeps its files, and the JSON state file `soma ps` and `soma up --detach` read.

Layout under `SOMA_STATE_DIR/platform/`: `supervisor.pid`, `supervisor.log` (detached runs),
`state.json` (rewritten atomically whenever something changes, and every poll), and
`logs/<component>.log` (each child's stdout and stderr).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from soma.ops.processes import Daemon
from soma.settings import Settings

SUPERVISOR_MARKER = "soma up"  # in the supervisor's command line (`soma up`, `python -m soma up`)


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def of(cls, settings: Settings) -> Paths:
        return cls((settings.stack.state_dir / "platform").resolve())

    @property
    def pid_file(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def component_log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def supervisor(self) -> Daemon:
        return Daemon("supervisor", self.pid_file, SUPERVISOR_MARKER)


@dataclass
class ComponentState:
    name: str
    state: str = "pending"  # pending, waiting, starting, ready, unready, backoff, stopping, stopped, disabled
    pid: int | None = None
    restarts: int = 0
    started_at: float | None = None  # wall clock of the current run's start
    ready_url: str = ""
    log_file: str = ""
    marker: str = ""
    depends_on: list[str] = field(default_factory=list)
    detail: str = ""
    last_exit: int | None = None

    def uptime_s(self, now: float | None = None) -> float | None:
        if self.started_at is None or self.pid is None:
            return None
        return max(0.0, (now or time.time()) - self.started_at)


@dataclass
class PlatformState:
    supervisor_pid: int
    phase: str  # starting (stack, migrations, topics), running, stopping, stopped, failed
    components: list[ComponentState]
    detail: str = ""
    updated_at: float = 0.0

    def component(self, name: str) -> ComponentState:
        return next(c for c in self.components if c.name == name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, raw: str) -> PlatformState:
        data: dict[str, Any] = json.loads(raw)
        components = [ComponentState(**c) for c in data.pop("components", [])]
        return cls(components=components, **data)


def write_state(path: Path, state: PlatformState) -> None:
    """Replace the state file atomically (a reader never sees half a file)."""
    state.updated_at = time.time()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(state.to_json())
    tmp.replace(path)


def read_state(path: Path) -> PlatformState | None:
    try:
        return PlatformState.from_json(path.read_text())
    except (FileNotFoundError, ValueError, TypeError):
        return None
