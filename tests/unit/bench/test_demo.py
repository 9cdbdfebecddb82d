"""Pure parts of `soma demo`: the hop table, the verdict, latencies, the admin token it picks, where it looks."""

from __future__ import annotations

import io

from rich.console import Console

from bench.demo.hops import MISSED, SEEN, SKIPPED, Hop, format_latency, hop_table, missed, verdict
from soma.settings import Settings
from soma.settings.tokens import token_covering


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


def test_token_covering_picks_a_token_whose_scope_covers_the_tenant() -> None:
    raw = '{"tok-acme-0123456789": "tenant:acme", "tok-admin-012345678": {"scope": "admin", "name": "ops"}}'
    assert token_covering(raw, "acme") == "tok-acme-0123456789"
    assert token_covering(raw, "globex") == "tok-admin-012345678"
    assert token_covering("tok-a-0123456789abc=tenant:a", "b") is None
    assert token_covering("{not json", "a") is None


def test_the_demo_reaches_each_process_on_its_declared_port() -> None:
    from bench.demo.endpoints import endpoints
    settings = Settings.construct_flat()
    urls = endpoints(settings)
    assert urls["stream-replicator"] == "http://127.0.0.1:6104"
    assert urls["admin"] == "http://127.0.0.1:8081"
    assert urls["relay"] == "http://127.0.0.1:9465"
