"""CPU seconds and resident memory of the platform's processes, read from /proc (Linux only).

Processes are named by `--pids name=pid,...`; else taken from the state file `soma up` keeps
(`SOMA_STATE_DIR/platform/state.json`: its components' names and pids, the live ones); else found
by their command line: `streams.<name>` (a faust worker), `outbox relay`, `admin serve`. When
several platforms run on one machine, only those whose SOMA_TOPIC_PREFIX (read from
/proc/<pid>/environ, when readable) equals ours are kept. Nothing here signals a process.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_KIB = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) // 1024
_STREAM = re.compile(r"\bstreams\.(worker|tools|integrator|segmenter|replicator)\b")


def parse_pids(text: str) -> dict[str, int]:
    """`name=pid,name=pid` -> {name: pid}; raises ValueError naming the bad entry."""
    found: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, pid = item.partition("=")
        if not sep or not name.strip() or not pid.strip().isdigit():
            raise ValueError(f"--pids: expected name=pid, got {item!r}")
        found[name.strip()] = int(pid)
    return found


def name_of(cmdline: list[str]) -> str | None:
    """The platform role of a command line, or None."""
    text = " ".join(cmdline)
    match = _STREAM.search(text)
    if match and "worker" in cmdline:
        return f"stream-{match.group(1)}"
    if re.search(r"\boutbox relay\b", text):
        return "relay"
    if re.search(r"\badmin serve\b", text):
        return "admin"
    return None


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _prefix_of(pid: int) -> str | None:
    raw = _read(PROC / str(pid) / "environ")
    if raw is None:
        return None  # not ours to read: keep the process
    for item in raw.split(b"\0"):
        if item.startswith(b"SOMA_TOPIC_PREFIX="):
            return item.split(b"=", 1)[1].decode(errors="replace")
    return ""


def discover(topic_prefix: str) -> dict[str, int]:
    """Platform processes on this machine whose topic prefix is ours: {name: pid} (name#2 ... for extras)."""
    found: dict[str, int] = {}
    me = os.getpid()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        raw = _read(entry / "cmdline")
        if not raw:
            continue
        name = name_of([part.decode(errors="replace") for part in raw.split(b"\0") if part])
        if name is None:
            continue
        prefix = _prefix_of(int(entry.name))
        if prefix is not None and prefix != topic_prefix:
            continue
        key, n = name, 1
        while key in found:
            n += 1
            key = f"{name}#{n}"
        found[key] = int(entry.name)
    return dict(sorted(found.items()))


def from_state_file(state_dir: Path) -> dict[str, int]:
    """{component: pid} of the live children in `soma up`'s state file; {} when there is none (or unreadable)."""
    try:
        data = json.loads((state_dir / "platform" / "state.json").read_text())
        found = {str(c["name"]): int(c["pid"]) for c in data.get("components", []) if c.get("pid")}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}
    return {name: pid for name, pid in sorted(found.items()) if (PROC / str(pid)).exists()}


def platform_pids(state_dir: Path, topic_prefix: str) -> dict[str, int]:
    """The state file's live components of this topic prefix, unless /proc shows more of ours (the state
    file is another platform's, e.g. `soma up` beside a private run, or stale): then those found in /proc."""
    listed = {name: pid for name, pid in from_state_file(state_dir).items()
              if _prefix_of(pid) in (None, topic_prefix) and (PROC / str(pid)).exists()}  # gone while we looked
    found = discover(topic_prefix)
    return listed if listed and len(listed) >= len(found) else found


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of the process so far, in seconds."""
    raw = _read(PROC / str(pid) / "stat")
    if raw is None:
        return None
    fields = raw.decode(errors="replace").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat(5)


def rss_mib(pid: int) -> float | None:
    raw = _read(PROC / str(pid) / "statm")
    if raw is None:
        return None
    return int(raw.split()[1]) * PAGE_KIB / 1024


def hwm_mib(pid: int) -> float | None:
    """VmHWM: the process's peak resident set since it started."""
    raw = _read(PROC / str(pid) / "status")
    if raw is None:
        return None
    for line in raw.decode(errors="replace").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


@dataclass
class Usage:
    name: str
    pid: int
    cpu_start: float | None
    cpu_end: float | None = None
    cpu_marked: float | None = None  # at `Sampler.mark()`: the end of the load, before the drain
    peak_rss_mib: float = 0.0
    hwm_mib: float | None = None
    alive: bool = True

    @property
    def cpu_s(self) -> float | None:
        if self.cpu_start is None or self.cpu_end is None:
            return None
        return self.cpu_end - self.cpu_start

    @property
    def cpu_load_s(self) -> float | None:
        """CPU seconds from the start to the mark (the load window); None when either is unknown."""
        if self.cpu_start is None or self.cpu_marked is None:
            return None
        return self.cpu_marked - self.cpu_start


class Sampler:
    """Samples RSS of the processes every `interval_s` in a thread; CPU seconds at start and stop."""

    def __init__(self, pids: dict[str, int], interval_s: float = 0.5) -> None:
        self.usage = {name: Usage(name, pid, cpu_seconds(pid)) for name, pid in pids.items()}
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def _sample(self) -> None:
        for u in self.usage.values():
            rss = rss_mib(u.pid)
            if rss is None:
                u.alive = False
            else:
                u.peak_rss_mib = max(u.peak_rss_mib, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def mark(self) -> None:
        """Note every process's CPU seconds now (the load ends; the drain follows)."""
        for u in self.usage.values():
            u.cpu_marked = cpu_seconds(u.pid)

    def stop(self) -> list[Usage]:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()
        for u in self.usage.values():
            u.cpu_end = cpu_seconds(u.pid)
            u.hwm_mib = hwm_mib(u.pid)
        return list(self.usage.values())
