"""`soma demo` and `soma bench load` against the real platform: relay, admin API and the five streams
as bounded child processes on free ports (soma/ops/local_platform.py), in a schema of their own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from soma.ops.local_platform import STREAMS, platform_settings, running_platform
from soma.settings import Settings
from tests.support.outbox_relay import own_schema
from tests.support.procs import run_soma

LOGS = Path(".soma/test-logs/platform")
HOPS = (
    "config update ENABLE_COG_THREADS=true published",
    "outbox row committed (writer)",
    "relay published the user message",
    "worker requested the tool",
    "tools stream ran it",
    "worker folded the result back (role=tool)",
    "memory write of the user message",
    "memory write of the tool message",
    "replicator upserted the rows",
    "memory write of the message",
    "replicator upserted the row",
    "integrator emitted a frame",
    "leader change plan -> act",
    "leader change act -> recall",
    "integrator cached the latest frame",
    "segment closed (new leader act)",
    "segment closed (new leader recall)",
    "config update INTEGRATOR_TEMPERATURE=0.25 published",
    "integrator applied it to the next frame",
    "admin API copied the row",
    "relay published the copy",
    "audit event",
)


@pytest.fixture(scope="module")
def platform(settings: Settings) -> Iterator[Settings]:
    with own_schema(settings, "platform") as own, running_platform(platform_settings(own), LOGS) as running:
        yield running


@pytest.mark.timeout(900)
def test_soma_demo_shows_every_hop(platform: Settings) -> None:
    result = run_soma(platform, "demo", "--hop-timeout", "60", timeout_s=600, COLUMNS="260")
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for hop in HOPS:
        assert hop in table, hop
    assert "missed" not in table
    assert "hops seen" in table
    assert "where to look" in table
    assert f"http://127.0.0.1:{platform.admin.port}/docs" in table


@pytest.mark.timeout(600)
def test_soma_bench_load_reports_latencies_and_loses_nothing(platform: Settings) -> None:
    result = run_soma(platform, "bench", "load", "--rate", "20", "--duration", "3", "--json", timeout_s=400,
                      COLUMNS="260")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    for path in ("chat_commit_to_replica_row", "tool_call_commit_to_replica_row_of_result",
                 "predictor_update_to_global_frame"):
        item = report[path]
        assert item["sent"] > 0, (path, item)
        assert item["lost"] == 0, (path, item)
        assert item["received"] == item["sent"], (path, item)
        latency = item["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"], (path, latency)
    assert report["chat_commit_to_replica_row"]["sent"] + report["tool_call_commit_to_replica_row_of_result"][
        "sent"] == pytest.approx(20 * 3 * 1.1, abs=3)
    names = {p["name"] for p in report["processes"]}
    assert {"relay", "admin", *(f"stream-{name}" for name in STREAMS)} <= names
    assert all(p["cpu_s"] is not None and p["peak_rss_mib"] > 10 for p in report["processes"])
    assert all(0 <= p["cpu_load_s"] <= p["cpu_s"] for p in report["processes"])


@pytest.mark.timeout(600)
def test_a_sweep_writes_one_result_per_rate_its_verdicts_and_a_plot(platform: Settings, tmp_path: Path) -> None:
    result = run_soma(platform, "bench", "load", "--rates", "20,10", "--duration", "3", "--out", str(tmp_path),
                      "--json", timeout_s=500, COLUMNS="260")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert json.loads((tmp_path / "sweep.json").read_text()) == document
    assert [r["rate"] for r in document["rates"]] == [10, 20]
    for entry in document["rates"]:
        assert entry["lost"] == 0, entry
        assert entry["predictor_rate"] == entry["rate"]
        assert set(entry["p99_ms"]) == {"chat", "tool", "frame"}
        assert all(v is not None and v > 0 for v in entry["p99_ms"].values()), entry["p99_ms"]
        assert {"relay", *(f"stream-{name}" for name in STREAMS)} <= set(entry["cpu_percent"])
        assert set(entry["backlog_before"]) == set(STREAMS)
    assert set(document["summary"]) == {"highest_rate_every_p99_under_1000_ms_nothing_lost",
                                        "highest_rate_every_p99_under_500_ms_nothing_lost"}
    assert document["plot"] == str(tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "rate 10/s" in result.stderr


def test_bench_load_refuses_a_remote_broker(settings: Settings) -> None:
    result = run_soma(settings, "bench", "load", "--rate", "10", "--duration", "1", timeout_s=60,
                      SOMA_KAFKA_BOOTSTRAP="10.9.8.7:9092")
    assert result.returncode == 1
    assert result.stderr.strip() == ("soma: error: bench load: Kafka 10.9.8.7:9092 is not a loopback address "
                                     "(SOMA_KAFKA_BOOTSTRAP)").replace("10.9.8.7:9092 is", "10.9.8.7 is")
