"""A load sweep's pure parts: the rates it accepts, the verdicts per limit, the JSON it writes, the plot's series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.load import LoadRefused
from bench.sweep import (
    MAX_RATES,
    highest_rate,
    holds,
    parse_rates,
    rate_line,
    summary_key,
    sweep_document,
    verdict_lines,
)
from bench.sweep_plot import series
from bench.sweep_run import write


def _path(p99: float | None, lost: int = 0, sent: int = 100) -> dict[str, Any]:
    latency = {} if p99 is None else {"p50": p99 / 4, "p95": p99 / 2, "p99": p99, "max": p99 * 1.1}
    return {"sent": sent, "received": sent - lost, "lost": lost, "throughput_per_s": 10.0, "latency_ms": latency}


def _report(rate: float, chat: float | None, tool: float | None, frame: float | None, *, lost: int = 0,
            tool_sent: int = 10) -> dict[str, Any]:
    return {
        "rate": rate, "predictor_rate": rate, "duration_s": 10.0, "achieved_chat_rate": rate, "machine": "m",
        "chat_commit_to_replica_row": _path(chat, lost),
        "tool_call_commit_to_replica_row_of_result": _path(tool, sent=tool_sent),
        "predictor_update_to_global_frame": _path(frame),
        "processes": [{"name": "relay", "pid": 1, "cpu_s": 3.0, "cpu_load_s": 2.0, "peak_rss_mib": 90.0},
                      {"name": "stream-worker", "pid": 2, "cpu_s": 6.0, "cpu_load_s": None, "peak_rss_mib": 99.0},
                      {"name": "bench-driver (this process)", "pid": 3, "cpu_s": 1.0, "cpu_load_s": 1.0,
                       "peak_rss_mib": 120.0}],
        "load_average_1m": [1.5, 2.0],
    }


def test_rates_are_parsed_sorted_and_bounded() -> None:
    assert parse_rates("200, 50,100,50") == [50.0, 100.0, 200.0]
    for text, message in (("", "empty"), ("50,abc", "numbers"), ("0,10", "must be in"), ("3000", "must be in"),
                          (",".join(str(n) for n in range(1, MAX_RATES + 2)), "at most")):
        with pytest.raises(LoadRefused, match=message):
            parse_rates(text)


def test_a_rate_holds_a_limit_when_nothing_is_lost_and_every_measured_p99_is_under_it() -> None:
    assert holds(_report(50, 300, 400, 100), 500)
    assert not holds(_report(50, 300, 600, 100), 500)
    assert holds(_report(50, 300, 600, 100), 1000)
    assert not holds(_report(50, 300, 400, 100, lost=1), 1000)
    assert holds(_report(50, 300, None, 100, tool_sent=0), 500)  # no tool calls asked: not a path of this run
    assert not holds(_report(50, None, None, None, tool_sent=0), 500)  # nothing measured at all


def test_the_highest_rate_per_limit() -> None:
    reports = [_report(50, 100, 150, 50), _report(100, 300, 450, 80), _report(200, 700, 900, 200),
               _report(300, 900, 1500, 400), _report(500, 5000, 9000, 1200, lost=3)]
    assert highest_rate(reports, 1000) == 200
    assert highest_rate(reports, 500) == 100
    assert highest_rate(reports, 100) is None
    assert highest_rate([], 1000) is None


def test_the_sweep_document_and_its_json(tmp_path: Path) -> None:
    reports = [_report(50, 100, 150, 50), _report(100, 800, 1200, 80, lost=2)]
    doc = sweep_document(reports, mode="running platform", duration_s=10.0, machine="m",
                         started_at="2026-12-02T09:00:00+00:00", notes=["n"])
    assert doc["summary"] == {summary_key(1000): 50.0, summary_key(500): 50.0}
    assert summary_key(1000) == "highest_rate_every_p99_under_1000_ms_nothing_lost"
    first, second = doc["rates"]
    assert first["p99_ms"] == {"chat": 100.0, "tool": 150.0, "frame": 50.0}
    assert first["cpu_percent"] == {"relay": 20.0, "bench-driver (this process)": 10.0}  # the worker's unread
    assert (first["lost"], second["lost"]) == (0, 2)
    json_path, png, missing = write(doc, tmp_path / "out")
    assert json.loads(json_path.read_text())["rates"][1]["rate"] == 100
    assert (png is None) == (missing is not None)
    if png is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert verdict_lines(doc) == ["highest rate with every p99 < 1.00 s and nothing lost: 50 msg/s",
                                  "highest rate with every p99 < 500 ms and nothing lost: 50 msg/s"]
    line = rate_line(doc["rates"][1])
    assert line.startswith("rate 100/s (achieved 100) + 100 updates/s: chat 200 ms/800 ms/880 ms lost 2;")
    assert "tool 300 ms/1.20 s/1.32 s lost 0" in line
    assert "load avg 1.5-2.0" in line
    assert "relay 20%" in line


def test_the_plot_series_skip_what_was_not_measured() -> None:
    doc = sweep_document([_report(50, 100, None, 50, tool_sent=0), _report(100, 200, 300, 60)],
                         mode="m", duration_s=10.0, machine="m", started_at="t")
    rates, p99, cpu = series(doc)
    assert rates == [50.0, 100.0]
    assert p99 == {"chat": [100.0, 200.0], "tool": [None, 300.0], "frame": [50.0, 60.0]}
    assert cpu == {"bench-driver (this process)": [10.0, 10.0], "relay": [20.0, 20.0],
                   "platform (sum)": [20.0, 20.0]}  # the driver is not the platform
    unread = _report(200, 300, 400, 100)
    unread["processes"] = unread["processes"][1:]  # relay gone: no CPU for it, and none for the platform
    doc["rates"].append(sweep_document([unread], mode="m", duration_s=10.0, machine="m", started_at="t")["rates"][0])
    _, _, cpu = series(doc)
    assert cpu["relay"] == [20.0, 20.0, None]
    assert cpu["platform (sum)"] == [20.0, 20.0, None]


def test_without_matplotlib_the_sweep_still_writes_its_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    doc = sweep_document([_report(50, 100, 150, 50)], mode="m", duration_s=10.0, machine="m", started_at="t")
    json_path, png, missing = write(doc, tmp_path)
    assert png is None
    assert missing is not None
    assert "matplotlib is not installed" in missing
    assert "\n" not in missing
    assert json.loads(json_path.read_text())["plot"] is None


def test_each_stream_reads_the_topics_that_name_it_as_consumer() -> None:
    from bench.kafka_offsets import inputs
    from soma.contracts.catalog import load_catalog

    catalog = load_catalog()
    assert inputs(catalog, "worker") == ["chat.messages", "tool.results"]
    assert inputs(catalog, "tools") == ["tool.requests"]
    assert inputs(catalog, "integrator") == ["cog.predictor_updates", "cog.sleep_requests"]
    assert inputs(catalog, "segmenter") == ["cog.global_frame"]
    assert inputs(catalog, "replicator") == ["memory.writes"]


def test_a_backlog_that_does_not_drain_stops_the_sweep_on_a_running_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.kafka_offsets as offsets
    import bench.sweep_run as sweep_run
    from soma.settings import Settings

    lags = iter([{"worker": 0, "replicator": 0}, {"worker": 0, "replicator": 0}, {"worker": 0, "replicator": 1234}])
    ran: list[float] = []

    def one(settings: Settings, rate: float, opts: sweep_run.SweepOptions) -> dict[str, Any]:
        ran.append(rate)
        return _report(rate, 100 * rate, 150 * rate, 10.0)

    monkeypatch.setattr(offsets, "wait_drained", lambda settings, catalog, timeout_s: next(lags))
    monkeypatch.setattr(sweep_run, "_one", one)
    monkeypatch.setattr(sweep_run.time, "sleep", lambda s: None)
    said: list[str] = []
    opts = sweep_run.SweepOptions([1.0, 5.0, 9.0], 10.0, drain_timeout_s=30.0)
    doc = sweep_run.run_sweep(Settings.construct_flat(), opts, said.append)
    assert ran == [1.0, 5.0]
    assert [r["backlog_before"] for r in doc["rates"]] == [{"worker": 0, "replicator": 0}] * 2
    assert doc["notes"][0] == ("rates from 9/s not run: the streams still had uncommitted input after 30s "
                               "(replicator 1234), the backlog of the rate before")
    assert doc["notes"][0] in said
    assert doc["summary"][summary_key(1000)] == 5.0  # p99 150 * 5 = 750 ms
    assert doc["mode"] == "running platform"
