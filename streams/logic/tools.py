"""The tool registry and the bounded execution of one tool request (no Kafka here)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from soma.contracts.bounded_json import loads_bounded
from streams.errors import ToolRegistryError

Tool = Callable[[Mapping[str, Any]], Any]  # sync or async; returns something JSON-serialisable
ENTRY_POINT_GROUP = "soma.tools"


def _echo(args: Mapping[str, Any]) -> Any:
    return dict(args)


def _calc(args: Mapping[str, Any]) -> Any:
    op, a, b = args.get("op", "add"), args["a"], args["b"]
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b)):
        raise ValueError("a and b must be numbers")
    ops: dict[str, Callable[[float, float], float]] = {
        "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y, "div": lambda x, y: x / y,
    }
    if op not in ops:
        raise ValueError(f"unknown op {op!r} (add, sub, mul, div)")
    return ops[op](a, b)


async def _sleep(args: Mapping[str, Any]) -> Any:
    seconds = float(args.get("seconds", 0))
    await asyncio.sleep(min(max(seconds, 0.0), 60.0))
    return {"slept": seconds}


BUILTINS: dict[str, Tool] = {"echo": _echo, "calc": _calc, "sleep": _sleep}


class ToolRegistry:
    def __init__(self, tools: Mapping[str, Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = dict(BUILTINS if tools is None else tools)

    def register(self, name: str, tool: Tool) -> None:
        self._tools[name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def label(self, name: str) -> str:
        """The metric label of a requested tool: its name when registered, else `other` (bounded)."""
        return name if name in self._tools else "other"

    def names(self) -> list[str]:
        return sorted(self._tools)

    def load_plugins(self, spec: str | Iterable[str], use_entry_points: bool = True) -> None:
        """Register `module:function` hooks (called with this registry) and `soma.tools` entry points."""
        items = spec.split(",") if isinstance(spec, str) else spec  # settings hand over a parsed tuple
        for item in (s.strip() for s in items if s.strip()):
            module, _, attr = item.partition(":")
            try:
                hook = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ToolRegistryError(f"tools plug-in {item!r} cannot be loaded: {exc}") from exc
            hook(self)
        if use_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                self.register(ep.name, ep.load())


@dataclass(frozen=True)
class ToolOutcome:
    status: str  # ok | error | timeout
    output: str | None
    error: str | None
    duration_ms: int


async def run_tool(registry: ToolRegistry, name: str, arguments_json: str, timeout_s: float) -> ToolOutcome:
    """Run one tool within `timeout_s`; every failure becomes an outcome, except arguments too large or too
    deeply nested to parse (`JsonLimitExceeded`): the request is hostile and goes to the DLQ."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    tool = registry.get(name)
    if tool is None:
        return ToolOutcome("error", None, f"unknown tool {name!r}", took())
    try:
        args = loads_bounded(arguments_json or "{}", "arguments_json")
        if not isinstance(args, dict):
            raise ValueError("arguments must be a JSON object")
    except ValueError as exc:
        return ToolOutcome("error", None, f"invalid arguments: {exc}", took())
    try:
        if inspect.iscoroutinefunction(tool):
            call: Awaitable[Any] = tool(args)
        else:
            call = asyncio.to_thread(tool, args)
        result = await asyncio.wait_for(call, timeout=timeout_s)
    except TimeoutError:
        return ToolOutcome("timeout", None, f"no result within {timeout_s:g}s", took())
    except Exception as exc:  # a tool's own failure is its result, not the executor's crash
        return ToolOutcome("error", None, f"{type(exc).__name__}: {exc}", took())
    try:
        output = result if isinstance(result, str) else json.dumps(result, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        return ToolOutcome("error", None, f"result is not JSON-serialisable: {exc}", took())
    return ToolOutcome("ok", output, None, took())
