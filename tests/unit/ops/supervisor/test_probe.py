"""Readiness probes of the supervised components."""

from __future__ import annotations

from soma.ops.supervisor.probe import Probe, fetch


def test_probe_failures_name_the_failing_checks() -> None:
    body = {"ready": False, "checks": {"kafka": {"ok": True, "detail": "ok"}, "redis": {"ok": False, "detail": "down"}}}
    assert Probe(False, 503, body).failures() == ["redis: down"]
    assert Probe(False, 503, {}).failures() == ["HTTP 503"]
    assert Probe(True, 200, {}).failures() == []


def test_probe_of_nothing_listening_says_no_answer() -> None:
    probe = fetch("http://127.0.0.1:1/readyz", timeout_s=2)
    assert not probe.ready
    assert probe.status is None
    assert probe.failures()[0].startswith("no answer from http://127.0.0.1:1/readyz")
