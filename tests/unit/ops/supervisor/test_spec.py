"""The supervisor's component order and dependencies, and the platform's declared components."""

from __future__ import annotations

from pathlib import Path

import pytest

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
from soma.settings import load_settings


def spec(name: str, *deps: str, disabled: str = "") -> ComponentSpec:
    return ComponentSpec(name, ("true",), f"http://127.0.0.1:1/{name}", name, deps, disabled)


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
