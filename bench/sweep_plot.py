"""The sweep's picture: offered rate against p99 per path (with the 500 ms and 1 s lines) and
against CPU per process, side by side, so the knee shows. matplotlib is optional (the `bench`
and `dev` extras); without it `plot` says so in one line and the sweep keeps its JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sweep import LIMITS_MS, PATHS, SHORT

PLATFORM = "platform (sum)"


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


Points = dict[str, list[float | None]]


def series(document: dict[str, Any]) -> tuple[list[float], Points, Points]:
    """(rates, {path: p99 ms per rate}, {process: CPU % per rate, and `platform (sum)` of the platform's}),
    None where a rate has no value (not measured, or the process's CPU could not be read)."""
    rates = [float(r["rate"]) for r in document["rates"]]
    p99 = {SHORT[key]: [r["p99_ms"][SHORT[key]] for r in document["rates"]] for _, key in PATHS}
    names = sorted({name for r in document["rates"] for name in r["cpu_percent"]})
    cpu: Points = {name: [r["cpu_percent"].get(name) for r in document["rates"]] for name in names}
    ours = [[v for name, v in r["cpu_percent"].items() if not name.startswith("bench-")] for r in document["rates"]]
    if any(ours):
        cpu[PLATFORM] = [round(sum(v), 1) if v else None for v in ours]
    return rates, p99, cpu


def _line(axes: Any, rates: list[float], values: list[float | None], **style: Any) -> None:
    points = [(r, v) for r, v in zip(rates, values, strict=True) if v is not None]
    if points:
        axes.plot([p[0] for p in points], [p[1] for p in points], **style)


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
        _line(lat, rates, values, marker="o", label=f"{name} p99")
    for limit in LIMITS_MS:
        lat.axhline(limit, linestyle="--", linewidth=0.8, color="grey")
        lat.annotate(f"{limit:g} ms", (rates[0], limit), fontsize="small", color="grey")
    lat.set_yscale("log")
    lat.set(xlabel="offered chat msg/s (+ as many predictor updates/s)", ylabel="p99 latency, ms (log)",
            title="rate vs p99 per path")
    lat.legend()
    for name, shares in cpu.items():
        style = {"marker": "s", "linestyle": "--", "color": "black"} if name == PLATFORM else {"marker": "o"}
        _line(use, rates, shares, label=name, **style)
    use.set(xlabel="offered chat msg/s", ylabel="CPU, % of one core (load window)", title="rate vs CPU per process")
    use.legend(fontsize="small")
    fig.suptitle(f"soma bench load sweep ({document['mode']}, {document['duration_s']:g} s per rate) "
                 f"{document['started_at']}\n{document['machine']}", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
