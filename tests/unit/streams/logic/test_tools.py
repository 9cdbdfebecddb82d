"""The tool registry: built-ins, plug-ins, timeouts, and errors as results."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest

from streams.errors import ToolRegistryError
from streams.logic.tools import ToolRegistry, run_tool


def run(name: str, args: str, timeout_s: float = 2.0, registry: ToolRegistry | None = None):
    return asyncio.run(run_tool(registry or ToolRegistry(), name, args, timeout_s))


def test_echo_and_calc() -> None:
    assert json.loads(run("echo", '{"x": 1}').output) == {"x": 1}
    out = run("calc", '{"op": "mul", "a": 6, "b": 7}')
    assert (out.status, out.output) == ("ok", "42")


def test_unknown_tool_is_an_error_result() -> None:
    out = run("nope", "{}")
    assert out.status == "error"
    assert "unknown tool" in (out.error or "")


def test_tool_exception_and_bad_arguments_are_error_results() -> None:
    assert run("calc", '{"op": "div", "a": 1, "b": 0}').status == "error"
    assert run("calc", "not json").status == "error"
    assert run("echo", "[1]").status == "error"


def test_timeout() -> None:
    out = run("sleep", '{"seconds": 5}', timeout_s=0.1)
    assert out.status == "timeout"
    assert out.duration_ms < 2000


def register_double(registry: ToolRegistry) -> None:
    def double(args: Mapping[str, Any]) -> Any:
        return args["n"] * 2

    registry.register("double", double)


def test_plugins_hook() -> None:
    registry = ToolRegistry()
    registry.load_plugins(f"{__name__}:register_double", use_entry_points=False)
    assert run("double", '{"n": 21}', registry=registry).output == "42"
    with pytest.raises(ToolRegistryError):
        registry.load_plugins("no.such.module:hook", use_entry_points=False)


def test_arguments_nested_too_deeply_are_refused_for_the_dlq_not_a_recursion_error() -> None:
    from soma.contracts.bounded_json import JsonLimitExceeded

    registry = ToolRegistry()
    with pytest.raises(JsonLimitExceeded, match="arguments_json: JSON too deeply nested"):
        asyncio.run(run_tool(registry, "echo", "[" * 50_000 + "]" * 50_000, 1.0))
    outcome = asyncio.run(run_tool(registry, "echo", "{not json", 1.0))
    assert outcome.status == "error"
    assert outcome.error is not None
    assert outcome.error.startswith("invalid arguments")


def test_unknown_tool_names_are_labelled_other() -> None:
    registry = ToolRegistry()
    assert registry.label("echo") == "echo"
    assert registry.label("no-such-tool-" + "x" * 1000) == "other"


def test_outputs_keep_non_ascii_text_as_utf8() -> None:
    outcome = asyncio.run(run_tool(ToolRegistry(), "echo", '{"t": "語"}', 1.0))
    assert outcome.output == '{"t": "語"}'
