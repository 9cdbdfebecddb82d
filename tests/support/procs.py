"""Bounded subprocesses for tests: every child has a hard timeout and is SIGKILLed at the latest at teardown.

The machinery lives in soma/ops/processes.py (the benchmarks use it too); here a child gets a
test's settings as its environment.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from soma.ops import processes
from soma.ops.processes import SOMA, run_soma, wait_for
from soma.settings import Settings

REPO = Path(__file__).resolve().parents[2]  # the source checkout (tests only: the package never looks for it)

__all__ = ["REPO", "SOMA", "background", "run_soma", "wait_for"]


@contextmanager
def background(
    argv: Sequence[str], settings: Settings, log_file: Path, max_lifetime_s: float = 600.0, grace_s: float = 10.0
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running child (e.g. a `faust worker`) in its own process group, with `settings` as its environment."""
    with processes.background(argv, log_file, settings.child_env(), max_lifetime_s=max_lifetime_s,
                              grace_s=grace_s) as proc:
        yield proc
