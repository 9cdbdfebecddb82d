"""The supervisor's pure parts: component order and dependencies, restart backoff, state file, probes."""

from __future__ import annotations

from pathlib import Path

import pytest

from soma.observability.readiness import Readiness
from soma.ops.supervisor.backoff import Backoff
from soma.ops.supervisor.probe import Probe, fetch
from soma.ops.supervisor.spec import (
    STREAMS,
    ComponentSpec,
    SpecError,
    levels,
    platform_components,
    resolve,
    stop_waves,
    stream_topology,
)
from soma.ops.supervisor.state import ComponentState, PlatformState, read_state, write_state
from soma.settings import load_settings


def spec(name: str, *deps: str, disabled: str = "") -> ComponentSpec:
    return ComponentSpec(name, ("true",), f"http://127.0.0.1:1/{name}", name, deps, disabled)


# --- order and dependencies ------------------------------------------------------------------
def test_declared_order_is_kept_when_dependencies_allow() -> None:
    order = [s.name for s in resolve([spec("a"), spec("b"), spec("c", "a")])]
    assert order == ["a", "b", "c"]


def test_a_component_comes_after_what_it_depends_on_even_when_declared_first() -> None:
    order = [s.name for s in resolve([spec("worker", "tools", "db"), spec("tools"), spec("db", "tools")])]
    assert order == ["tools", "db", "worker"]


@pytest.mark.parametrize(("specs", "message"), [
    ([spec("a", "ghost")], "depends on unknown component 'ghost'"),
    ([spec("a", "b"), spec("b", "a")], "dependency cycle among a, b"),
    ([spec("a"), spec("a")], "declared twice"),
])
def test_inconsistent_specs_are_refused_naming_the_component(specs: list[ComponentSpec], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        resolve(specs)


def test_dependents_of_a_disabled_component_are_disabled_too() -> None:
    resolved = {s.name: s for s in resolve([spec("api", disabled="no tokens"), spec("ui", "api"), spec("x")])}
    assert resolved["ui"].disabled == "needs api, which is disabled"
    assert resolved["x"].disabled == ""


def test_stop_waves_reverse_the_dependency_levels() -> None:
    specs = [spec("a"), spec("b", "a"), spec("c", "b"), spec("d")]
    assert levels(specs) == {"a": 0, "b": 1, "c": 2, "d": 0}
    assert stop_waves(specs) == [["c"], ["b"], ["d", "a"]]


def test_the_platform_declares_relay_admin_and_five_streams(tmp_path: Path) -> None:
    (tmp_path / "soma").touch()
    (tmp_path / "faust").touch()
    settings = load_settings(admin_tokens="0123456789abcdef-token=admin", streams_web_port_base=7000,
                             streams_web_host="0.0.0.0")  # noqa: S104 - a setting under test, nothing binds
    specs = resolve(platform_components(settings, bin_dir=tmp_path))
    names = [s.name for s in specs]
    assert names == ["relay", "admin-api", "stream-replicator", "stream-tools", "stream-worker",
                     "stream-integrator", "stream-segmenter"]
    by_name = {s.name: s for s in specs}
    assert by_name["relay"].argv == (str(tmp_path / "soma"), "outbox", "relay")
    assert by_name["stream-worker"].argv[:3] == (str(tmp_path / "faust"), "-A", "streams.worker")
    assert by_name["stream-worker"].depends_on == ("stream-tools", "stream-replicator")
    assert by_name["stream-worker"].ready_url == "http://127.0.0.1:7000/readyz"  # a wildcard is reached on loopback
    assert by_name["stream-segmenter"].health_url == "http://127.0.0.1:7003/healthz"
    assert stop_waves(specs)[0] == ["stream-segmenter", "stream-worker"]


def test_admin_api_is_disabled_without_tokens(tmp_path: Path) -> None:
    specs = {s.name: s for s in platform_components(load_settings(admin_tokens=None), bin_dir=tmp_path)}
    assert specs["admin-api"].disabled == "SOMA_ADMIN_TOKENS is not set"
    assert specs["relay"].argv[1:4] == ("-m", "soma", "outbox")  # no console script there: the module


def test_every_stream_has_its_own_web_port_and_known_dependencies() -> None:
    offsets = [stream.port_offset for stream in STREAMS]
    assert len(set(offsets)) == len(offsets)
    names = {stream.component for stream in STREAMS}
    assert all(dep in names for stream in STREAMS for dep in stream.depends_on)
    with pytest.raises(SpecError, match="unknown stream 'nope'"):
        stream_topology("nope")


# --- restart backoff -------------------------------------------------------------------------
def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base_s=1.0, cap_s=30.0, reset_after_s=60.0)
    assert [backoff.on_exit(uptime_s=2.0) for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_backoff_resets_after_the_child_stayed_up() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, reset_after_s=60.0)
    assert [backoff.on_exit(1.0) for _ in range(3)] == [0.5, 1.0, 2.0]
    assert backoff.on_exit(uptime_s=61.0) == 0.5
    assert backoff.on_exit(uptime_s=1.0) == 1.0
    assert Backoff(1.0, 30.0, 60.0, crashes=10_000).on_exit(0.0) == 30.0  # no overflow


# --- state file --------------------------------------------------------------------------------
def test_state_file_round_trips_and_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "platform" / "state.json"
    state = PlatformState(123, "running", [ComponentState("relay", "ready", pid=5, restarts=2, started_at=1.0)])
    write_state(path, state)
    again = read_state(path)
    assert again is not None
    assert again.component("relay").restarts == 2
    assert again.phase == "running"
    assert again.updated_at > 0
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]
    path.write_text("{not json")
    assert read_state(path) is None
    assert read_state(tmp_path / "missing.json") is None


def test_uptime_only_while_running() -> None:
    assert ComponentState("a", pid=None, started_at=10.0).uptime_s(now=20.0) is None
    assert ComponentState("a", pid=7, started_at=10.0).uptime_s(now=25.0) == 15.0


# --- probes ----------------------------------------------------------------------------------------
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


# --- readiness checks ------------------------------------------------------------------------------
def test_readiness_names_the_unreachable_dependency_and_its_setting() -> None:
    settings = load_settings(kafka_bootstrap="127.0.0.1:1", health_check_timeout_s=0.5)
    report = Readiness(settings, "x", ("kafka", "opa")).report()
    assert report["ready"] is False
    assert set(report["checks"]) == {"kafka"}  # OPA is only checked when SOMA_OPA_URL is set
    assert "SOMA_KAFKA_BOOTSTRAP" in report["checks"]["kafka"]["detail"]


def test_readiness_caches_and_survives_a_failing_check() -> None:
    calls: list[int] = []

    def counted() -> tuple[bool, str]:
        calls.append(1)
        return True, "fine"

    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom\nsecond line")

    readiness = Readiness(load_settings(health_cache_s=60), "x", (), extra={"own": counted, "bad": broken})
    first = readiness.report()
    assert readiness.report() is first
    assert len(calls) == 1
    assert first["checks"]["bad"] == {"ok": False, "detail": "RuntimeError: boom"}
    assert first["ready"] is False
    with pytest.raises(ValueError, match="unknown readiness checks"):
        Readiness(load_settings(), "x", ("kafak",))
