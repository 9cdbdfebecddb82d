"""The sweep's picture: offered rate against p99 per path (with the 500 ms and 1 s lines) and
against CPU per process, side by side, so the knee shows. matplotlib is optional (the `bench`
and `dev` extras); without it `plot` says so in one line and the sweep keeps its JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sweep import LIMITS_MS, PATHS, SHORT


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def series(document: dict[str, Any]) -> tuple[list[float], dict[str, list[float | None]], dict[str, list[float]]]:
    """(rates, {path: p99 ms or None (not measured) per rate}, {process: CPU % per rate (0 when unread)})."""
    rates = [float(r["rate"]) for r in document["rates"]]
    p99 = {SHORT[key]: [r["p99_ms"][SHORT[key]] for r in document["rates"]] for _, key in PATHS}
    names = sorted({name for r in document["rates"] for name in r["cpu_percent"]})
    cpu = {name: [float(r["cpu_percent"].get(name, 0.0)) for r in document["rates"]] for name in names}
    return rates, p99, cpu


def plot(document: dict[str, Any], path: Path) -> Path:
    """Write the PNG; `PlotUnavailable` when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("bench load: no plot (matplotlib is not installed: pip install -e '.[bench]'); "
                              "the JSON has every number") from None
    rates, p99, cpu = series(document)
    fig, (lat, use) = plt.subplots(1, 2, figsize=(13, 5))
    for name, values in p99.items():
        points = [(r, v) for r, v in zip(rates, values, strict=True) if v is not None]
        if points:
            lat.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{name} p99")
    for limit in LIMITS_MS:
        lat.axhline(limit, linestyle="--", linewidth=0.8, color="grey")
        lat.annotate(f"{limit:g} ms", (rates[0], limit), fontsize="small", color="grey")
    lat.set_yscale("log")
    lat.set(xlabel="offered chat msg/s (+ as many predictor updates/s)", ylabel="p99 latency, ms (log)",
            title="rate vs p99 per path")
    lat.legend()
    for name, shares in cpu.items():
        use.plot(rates, shares, marker="o", label=name)
    platform = [sum(v) for v in zip(*(vals for name, vals in cpu.items() if not name.startswith("bench-")),
                                    strict=True)]
    if platform:
        use.plot(rates, platform, marker="s", linestyle="--", color="black", label="platform (sum)")
    use.set(xlabel="offered chat msg/s", ylabel="CPU, % of one core (load window)", title="rate vs CPU per process")
    use.legend(fontsize="small")
    fig.suptitle(f"soma bench load sweep ({document['mode']}, {document['duration_s']:g} s per rate) "
                 f"{document['started_at']}\n{document['machine']}", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
