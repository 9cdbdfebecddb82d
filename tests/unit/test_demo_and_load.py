"""Pure parts of `soma demo` and `soma bench load`: hop table, verdict, percentiles, guards, /proc parsing."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr
from rich.console import Console

from bench.load import MAX_DURATION_S, MAX_RATE, LoadRefused, Series, check_target, is_loopback, percentiles
from bench.proc_usage import cpu_seconds, discover, from_state_file, hwm_mib, name_of, parse_pids, rss_mib
from outbox.admin.auth import token_covering
from soma.cli.hops import MISSED, SEEN, SKIPPED, Hop, format_latency, hop_table, missed, verdict
from soma.settings import Settings


def _render(table: object) -> str:
    out = io.StringIO()
    Console(file=out, width=250, color_system=None).print(table)
    return out.getvalue()


def test_hop_table_shows_every_hop_with_its_latency_and_status() -> None:
    hops = [
        Hop("chat", "relay published the user message", "chat.messages", "acme", "seq=1 p0@3", 0.0123),
        Hop("chat", "replicator upserted the row", "memory_replica (PostgreSQL)", "acme", "1 row(s)", 1.5),
        Hop("cog", "leader change plan -> act", "cog.global_frame", "acme", status=MISSED, note="not seen within 30s"),
        Hop("cog", "segment closed", "cog.segments", "acme", status=SKIPPED, note="after a missed hop"),
    ]
    text = _render(hop_table(hops))
    for hop in hops:
        assert hop.hop in text
        assert hop.where in text
    assert "12.3 ms" in text
    assert "1.50 s" in text
    assert "missed: not seen within 30s" in text
    assert text.count("chat ") >= 1
    assert text.count("│ chat ") == 1


def test_verdict_names_the_missed_hops() -> None:
    ok = [Hop("chat", "a", "t", "acme"), Hop("chat", "b", "t", "acme", status="info")]
    assert verdict(ok) == "all 1 hops seen"
    assert missed(ok) == []
    bad = [*ok, Hop("cog", "leader change", "cog.global_frame", "acme", status=MISSED)]
    assert verdict(bad) == "1 hop(s) did not happen in time: cog: leader change (cog.global_frame, acme)"
    assert [h.hop for h in missed(bad)] == ["leader change"]


def test_format_latency() -> None:
    assert format_latency(None) == "-"
    assert format_latency(-0.001) == "0.0 ms"
    assert format_latency(0.25) == "250.0 ms"
    assert format_latency(2.0) == "2.00 s"
    assert Hop("s", "h", "w", "t").status == SEEN


def test_percentiles_nearest_rank() -> None:
    assert percentiles([]) == {}
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert percentiles([3.0]) == {"p50": 3.0, "p95": 3.0, "p99": 3.0, "max": 3.0}
    assert percentiles([5.0, 1.0, 3.0], points=(50,)) == {"p50": 3.0, "max": 5.0}


def test_series_counts_what_was_lost() -> None:
    series = Series(sent=3, latencies=[0.1, 0.2], first_in=10.0, last_out=12.0)
    assert series.received == 2
    assert series.lost == 1
    assert series.throughput == 1.0
    assert series.summary()["latency_ms"]["max"] == 200.0


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.2.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("10.0.0.5", False), ("kafka", False), ("db.example.com", False), ("0.0.0.0", False),  # noqa: S104
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _settings(**fields: object) -> Settings:
    return Settings.model_construct(**{**{name: f.default for name, f in Settings.model_fields.items()}, **fields})


def test_the_load_run_refuses_non_loopback_targets_and_unbounded_runs() -> None:
    check_target(_settings(), 100, 10)
    cases = {
        "Kafka 10.1.2.3 is not a loopback address (SOMA_KAFKA_BOOTSTRAP)":
            _settings(kafka_bootstrap="127.0.0.1:9092,10.1.2.3:9092"),
        "PostgreSQL db.internal is not a loopback address (SOMA_DATABASE_URL)":
            _settings(database_url=SecretStr("postgresql+psycopg://u:secret@db.internal:5432/soma")),
        "Redis cache is not a loopback address (SOMA_REDIS_URL)":
            _settings(redis_url=SecretStr("redis://:pw@cache:6379/0")),
    }
    for message, settings in cases.items():
        with pytest.raises(LoadRefused) as caught:
            check_target(settings, 100, 10)
        assert str(caught.value) == f"bench load: {message}"
        assert "secret" not in str(caught.value)
        assert "\n" not in str(caught.value)
    for rate, duration in ((MAX_RATE + 1, 10), (0, 10), (10, MAX_DURATION_S + 1), (10, 0)):
        with pytest.raises(LoadRefused, match="must be in"):
            check_target(_settings(), rate, duration)


def test_parse_pids_and_process_names() -> None:
    assert parse_pids("relay=12, stream-worker=34") == {"relay": 12, "stream-worker": 34}
    with pytest.raises(ValueError, match="expected name=pid"):
        parse_pids("relay:12")
    assert name_of(["/v/bin/faust", "-A", "streams.integrator", "worker", "-l", "info"]) == "stream-integrator"
    assert name_of(["/v/bin/python", "-m", "soma", "outbox", "relay"]) == "relay"
    assert name_of(["/v/bin/soma", "admin", "serve", "--port", "1"]) == "admin"
    assert name_of(["/v/bin/python", "-m", "pytest", "tests/streams.worker"]) is None


def test_proc_readers_see_this_process() -> None:
    pid = os.getpid()
    assert (cpu_seconds(pid) or 0) > 0
    assert (rss_mib(pid) or 0) > 1
    assert (hwm_mib(pid) or 0) >= (rss_mib(pid) or 0) - 1
    assert cpu_seconds(2**22 + 7) is None  # no such process
    assert isinstance(discover("no-such-prefix-" + str(pid)), dict)


def test_token_covering_picks_a_token_whose_scope_covers_the_tenant() -> None:
    raw = '{"tok-acme-0123456789": "tenant:acme", "tok-admin-012345678": {"scope": "admin", "name": "ops"}}'
    assert token_covering(raw, "acme") == "tok-acme-0123456789"
    assert token_covering(raw, "globex") == "tok-admin-012345678"
    assert token_covering("tok-a-0123456789abc=tenant:a", "b") is None
    assert token_covering("{not json", "a") is None


def test_pids_come_from_the_supervisor_state_file_when_there_is_one(tmp_path: Path) -> None:
    assert from_state_file(tmp_path) == {}
    (tmp_path / "platform").mkdir()
    state = tmp_path / "platform" / "state.json"
    state.write_text("{not json")
    assert from_state_file(tmp_path) == {}
    state.write_text(json.dumps({"supervisor_pid": 1, "phase": "running", "components": [
        {"name": "relay", "pid": os.getpid()}, {"name": "worker", "pid": None}, {"name": "gone", "pid": 2**22 + 7},
    ]}))
    assert from_state_file(tmp_path) == {"relay": os.getpid()}


def test_the_demo_reaches_each_process_on_its_declared_port() -> None:
    from soma.cli.demo_scenario import endpoints
    settings = Settings.model_construct(**{name: f.default for name, f in Settings.model_fields.items()})
    urls = endpoints(settings)
    assert urls["stream-replicator"] == "http://127.0.0.1:6104"
    assert urls["admin"] == "http://127.0.0.1:8081"
    assert urls["relay"] == "http://127.0.0.1:9465"
