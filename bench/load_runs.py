"""Load runs at several rates, each against a fresh private platform (relay, admin, five streams).

    python bench/load_runs.py --rates 50,100,200,400 --duration 25

For every rate: a topic prefix and PostgreSQL schema of its own, the platform started as bounded
children (soma/ops/local_platform.py), then `bench.load.LoadRun` (what `soma bench load` runs),
then everything stopped and dropped. Prints one line per rate and the highest rate whose
chat and frame p99 stayed under 1 s with nothing lost; the 1-minute load average is printed
next to each run, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import LoadRun
from bench.machine import describe
from soma.ops.isolation import isolated_run
from soma.ops.local_platform import platform_settings, running_platform
from soma.settings import load_settings


def one_rate(rate: float, duration: float, logs: Path) -> dict[str, object]:
    run = uuid.uuid4().hex[:6]
    with isolated_run(load_settings(), "loadbench", run) as base, \
            running_platform(platform_settings(base), logs / run, lifetime_s=duration + 600) as settings:
        before = os.getloadavg()[0]
        report = LoadRun(settings, rate, duration, drain_timeout_s=90).run()
        after = os.getloadavg()[0]
    data = report.as_dict()
    data["load_average_1m"] = [round(before, 1), round(after, 1)]
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="50,100,200,400")
    parser.add_argument("--duration", type=float, default=25.0)
    parser.add_argument("--logs", type=Path, default=Path(".soma/bench-logs/load"))
    parser.add_argument("--json", type=Path, help="also write every report to this file")
    args = parser.parse_args()
    print(f"machine: {describe()}", flush=True)
    reports = []
    best = None
    for rate in [float(r) for r in args.rates.split(",")]:
        data = one_rate(rate, args.duration, args.logs)
        reports.append(data)
        chat, tool, frames = (data["chat_commit_to_replica_row"], data["tool_call_commit_to_replica_row_of_result"],
                              data["predictor_update_to_global_frame"])
        lost = chat["lost"] + tool["lost"] + frames["lost"]  # type: ignore[index]
        p99s = [s["latency_ms"].get("p99", float("inf")) for s in (chat, tool, frames)]  # type: ignore[attr-defined]
        ok = lost == 0 and max(p99s) < 1000
        best = rate if ok else best
        cpu = ", ".join(f"{p['name']} {p['cpu_s']}s/{p['peak_rss_mib']:.0f}MiB" for p in data["processes"])  # type: ignore[attr-defined]
        print(f"rate {rate:g}/s (achieved {data['achieved_chat_rate']}): chat p50/p95/p99/max "
              f"{chat['latency_ms']} thr {chat['throughput_per_s']}/s lost {chat['lost']}; "  # type: ignore[index]
              f"tool {tool['latency_ms']} lost {tool['lost']}; "  # type: ignore[index]
              f"frames {frames['latency_ms']} thr {frames['throughput_per_s']}/s lost {frames['lost']}; "  # type: ignore[index]
              f"load avg {data['load_average_1m']}; {'OK' if ok else 'p99 >= 1 s or lost'}\n  {cpu}", flush=True)
    print(f"highest rate with every p99 < 1 s and nothing lost: {best if best is not None else 'none'}")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
