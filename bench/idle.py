"""Idle cost of the running platform: CPU of every platform process over N seconds with no traffic.

    python -m bench.idle [--seconds 30] [--json out.json]

Measures, from /proc (utime + stime), the supervisor of `soma up` and each live component of its
state file (else the platform processes found by command line), against a baseline started in the
same run: a bare `asyncio.run(asyncio.sleep(N))` interpreter, i.e. what a process that waits
without any timer costs on this machine right now. Prints a table in % of ONE core (and the load
average, since the machine may be shared); `--json` also writes the numbers. Sends nothing, signals
nothing: run it while nothing else talks to the platform.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.proc_usage import cpu_seconds, platform_pids
from soma.settings import load_settings

BARE = "import asyncio; asyncio.run(asyncio.sleep({seconds}))"


@dataclass(frozen=True)
class IdleCost:
    name: str
    pid: int
    cpu_s: float
    seconds: float

    @property
    def core_pct(self) -> float:
        return 100.0 * self.cpu_s / self.seconds if self.seconds > 0 else 0.0


def supervisor_pid(state_dir: Path) -> int | None:
    try:
        pid = int(json.loads((state_dir / "platform" / "state.json").read_text())["supervisor_pid"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def measure(pids: dict[str, int], seconds: float) -> list[IdleCost]:
    """CPU seconds of each process over `seconds` (processes gone meanwhile are left out)."""
    start = {name: cpu_seconds(pid) for name, pid in pids.items()}
    began = time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - began
    costs = []
    for name, pid in pids.items():
        before, after = start[name], cpu_seconds(pid)
        if before is not None and after is not None:
            costs.append(IdleCost(name, pid, after - before, took))
    return costs


def table(costs: list[IdleCost], baseline: IdleCost | None, load: tuple[float, float, float]) -> str:
    lines = [f"{'process':<22} {'pid':>8} {'cpu s':>8} {'% core':>8}"]
    lines += [f"{c.name:<22} {c.pid:>8} {c.cpu_s:>8.2f} {c.core_pct:>8.2f}" for c in costs]
    total = sum(c.cpu_s for c in costs)
    seconds = costs[0].seconds if costs else 0.0
    lines.append(f"{'platform total':<22} {'':>8} {total:>8.2f} {100.0 * total / seconds if seconds else 0.0:>8.2f}")
    if baseline is not None:
        lines.append(f"{'baseline (bare sleep)':<22} {baseline.pid:>8} {baseline.cpu_s:>8.2f} "
                     f"{baseline.core_pct:>8.2f}")
    lines.append(f"over {seconds:.1f}s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to measure (default 30)")
    parser.add_argument("--settle", type=float, default=0.0, help="wait this long before measuring")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    settings = load_settings()
    state_dir = Path(settings.stack.state_dir)
    pids = platform_pids(state_dir, settings.kafka.topic_prefix)
    sup = supervisor_pid(state_dir)
    if sup is not None:
        pids = {"supervisor": sup} | pids
    if not pids:
        print("no platform process found: start it with `soma up --detach`", file=sys.stderr)
        return 1
    time.sleep(args.settle)
    bare = subprocess.Popen([sys.executable, "-c", BARE.format(seconds=args.seconds + 30)])
    try:
        time.sleep(1.0)  # its start-up (imports) is not idle cost
        costs = measure(pids | {"baseline": bare.pid}, args.seconds)
    finally:
        bare.kill()
        bare.wait()
    baseline = next((c for c in costs if c.name == "baseline"), None)
    costs = [c for c in costs if c.name != "baseline"]
    load = os.getloadavg()
    print(table(costs, baseline, load))
    if args.json is not None:
        args.json.write_text(json.dumps({
            "seconds": args.seconds, "load_average": load,
            "processes": [asdict(c) | {"core_pct": round(c.core_pct, 3)} for c in costs],
            "total_core_pct": round(sum(c.core_pct for c in costs), 3),
            "baseline": None if baseline is None else asdict(baseline) | {"core_pct": round(baseline.core_pct, 3)},
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
