"""tools (tool executor): tool.requests -> registered tool with timeout -> tool.results.

Run: `faust -A streams.tools worker`. The agent takes requests in small batches (at most
`TOOLS_CONCURRENCY` at start-up) and runs a batch's calls concurrently, limited by the live
`TOOLS_CONCURRENCY`; Faust acknowledges a batch's offsets only after every call of the batch
finished and every result was acknowledged by the broker (all waited for together, once per
batch), so a committed offset never passes an in-flight call or an undelivered result.
An unknown tool, bad arguments, a tool's exception or a timeout all become results; arguments
too large or too deeply nested to parse (`soma.contracts.bounded_json`) send the request to the
DLQ with that reason, as does any other failure of its own (the stream goes on). The
`soma_tools_calls_total` metric counts unknown tool names as `tool="other"`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable
from typing import Any

from soma.contracts.ids import derive_id
from soma.contracts.limits import RecordTooLarge
from streams.app import StreamApp
from streams.logic.output import Output
from streams.logic.tools import ToolRegistry, run_tool
from streams.runtime.records import Incoming

stream = StreamApp("tools", ["tool.requests"])
app = stream.app
registry = ToolRegistry()
registry.load_plugins(stream.settings.streams.tools_plugins)
BATCH_WAIT_S = 0.02  # longest wait to fill a batch of requests (adds at most this to a call's latency)


async def handle(record: Incoming, limit: asyncio.Semaphore, deliveries: list[Awaitable[Any]]) -> None:
    request = record.value
    timeout_s = min(int(request["timeout_ms"]) / 1000.0, stream.settings.streams.tools_max_timeout_s)
    async with limit:
        outcome = await run_tool(registry, str(request["tool"]), str(request["arguments_json"]), timeout_s)
    stream.metrics.tenant_child(stream.metrics.tool_calls, record.tenant, registry.label(str(request["tool"])),
                                outcome.status).inc()
    result = {
        "event_id": derive_id(record.event_id, "result"),
        "occurred_at": request["occurred_at"],
        "session_id": request["session_id"],
        "call_id": request["call_id"],
        "tool": request["tool"],
        "status": outcome.status,
        "output": outcome.output,
        "error": outcome.error,
        "duration_ms": outcome.duration_ms,
    }
    try:
        prepared = stream.prepare_outputs([Output("tool.results", result, record.tenant)], cause=record)
    except RecordTooLarge as exc:  # the caller still gets an answer: an error result instead of the output
        result |= {"status": "error", "output": None, "error": f"result too large: {exc}"}
        prepared = stream.prepare_outputs([Output("tool.results", result, record.tenant)], cause=record)
    deliveries.extend(await stream.send_prepared(prepared))


async def execute_batch(records: list[Incoming]) -> None:
    """The batch's calls run concurrently, at most the live `TOOLS_CONCURRENCY` at a time; their results are
    handed to the producer as each call ends and acknowledged together (one wait per batch, not per call)."""
    limit = asyncio.Semaphore(int(stream.param("tools_concurrency")))
    deliveries: list[Awaitable[Any]] = []
    await asyncio.gather(*(stream.handle_traced(r, functools.partial(handle, limit=limit, deliveries=deliveries))
                           for r in records))
    await stream.acknowledged(deliveries, "tool results")


@app.agent(stream.sources)
async def execute(events: Any) -> None:
    await stream.run_batches(events, execute_batch, stream.settings.streams.live.tools_concurrency, BATCH_WAIT_S)
