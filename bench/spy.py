"""py-spy on one process until a deadline, in a thread: raw (collapsed) stacks of the GIL holder.

Non-blocking (the process is never paused). py-spy can stop early on a process that changes
under it (a panic reading its memory); then it is started again for the time left, each run
writing its own file, so one bad read costs a few samples rather than the process's whole profile.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.load import LoadRefused

SAMPLE_HZ = 100
MIN_RUN_S = 2  # a restart with less time left is not worth it


def py_spy() -> str:
    """The py-spy executable (next to this interpreter, else on PATH); `LoadRefused` in one line when missing."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise LoadRefused("bench profile: py-spy is not installed (pip install -e '.[bench]')")
    return found


def _why(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    for line in lines:
        if "panicked" in line or line.lower().startswith("error"):
            return line
    return lines[-1] if lines else "no message"


class Spy:
    def __init__(self, name: str, pid: int, out: Path, until: float) -> None:
        self.name, self.pid, self.out, self.until = name, pid, out, until  # until: time.monotonic()
        self.files: list[Path] = []
        self.errors: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name=f"py-spy-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while (left := int(self.until - time.monotonic())) >= MIN_RUN_S:
            path = self.out / f"{self.name}.{len(self.files)}.raw.txt"
            self.files.append(path)
            self._proc = subprocess.Popen(
                [py_spy(), "record", "--pid", str(self.pid), "--duration", str(left), "--rate", str(SAMPLE_HZ),
                 "--nonblocking", "--gil", "--format", "raw", "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, err = self._proc.communicate()
            if self._proc.returncode == 0:
                return
            self.errors.append(f"py-spy on {self.name} exited {self._proc.returncode} with {left}s left "
                               f"({_why(err)}); started again")

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
        if self._thread.is_alive() and self._proc is not None:
            self._proc.kill()  # our own child, by its handle
            self._thread.join(5)

    def lines(self) -> list[str]:
        return [line for path in self.files if path.exists() for line in path.read_text().splitlines()]
