"""Go programs the tests need (OPA, promtool), built once with `go install` into the state dir."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from soma.ops.processes import run_bounded
from tests.support.procs import REPO


def go_installed(state_dir: Path, name: str, module: str, version: str, *, tags: Sequence[str] = (),
                 timeout_s: float = 1200) -> Path | None:
    """`<state dir>/<name>/bin-<version>/<name>`, built on first use (None when Go is missing or the build fails)."""
    target = (REPO / state_dir if not state_dir.is_absolute() else state_dir) / name / f"bin-{version}"
    binary = target / name
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        return None
    from soma.settings import load_settings

    env = load_settings().child_env(GOBIN=str(target), GOFLAGS="-mod=mod")
    argv = [go, "install", *(["-tags", ",".join(tags)] if tags else []), f"{module}@{version}"]
    result = run_bounded(argv, timeout_s=timeout_s, env=env)
    return binary if result.returncode == 0 and binary.exists() else None
