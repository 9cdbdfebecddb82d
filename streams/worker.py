"""worker (conversation worker): chat.messages + tool.results -> session state and new events.

Run: `faust -A streams.worker worker`. Both sources are keyed tenant:session and
co-partitioned, so one `sessions` table (changelog-backed) holds every session of the
partition. Per message: a memory.writes event, tool.requests for its tool calls, and the
responder's reply; per tool result: the role=tool ChatMessage that folds it back.
"""

from __future__ import annotations

from typing import Any

from streams.app import Incoming, Out, StreamApp
from streams.logic.responders import load_responder
from streams.logic.session import SessionState, on_message, on_tool_result, wants_reply

stream = StreamApp("worker", ["chat.messages", "tool.results"])
app = stream.app
sessions = stream.table("sessions")
responder = load_responder(stream.settings.worker_responder)


async def handle(record: Incoming) -> None:
    value = record.value
    tenant = record.tenant
    key = f"{tenant}:{value['session_id']}"
    state = SessionState.from_dict(sessions.get(key))
    window = stream.settings.streams_dedupe_window
    if record.topic == "tool.results":
        new_state, outputs = on_tool_result(state, value, window=window)
    else:
        reply = None
        if record.event_id not in state.seen and wants_reply(state, value):
            reply = responder.respond(state, value)
        new_state, outputs = on_message(state, value, window=window, reply=reply)
    if new_state == state:
        stream.metrics.duplicates.inc()
        return
    await stream.emit([Out(o.topic, o.event, tenant) for o in outputs], cause=record)
    await stream.write_state(sessions, record.partition, {key: new_state.to_dict()})


@app.agent(stream.sources)
async def converse(events: Any) -> None:
    await stream.run(events, handle)
