"""The conversation worker's session folding: pure functions over a session's state.

`decide` is the worker's one entry point: a ChatMessage or a ToolResult in, the session's next
state and the outputs out. `on_message` folds a ChatMessage into the session (count, last sequence, pending tool calls)
and returns the outputs: a memory write for every message, a tool request per tool call, and
the responder's reply when one is given. `on_tool_result` turns a ToolResult for a pending
call into the role=tool ChatMessage that carries it back into the session. An input whose
event id the session has seen changes nothing and emits nothing: its outputs were delivered
before the state that records it was written.

A session's state is bounded: `seen` by the dedupe window, `pending` by `MAX_PENDING_CALLS` (a
message whose tool calls would pass it is refused with `InvalidInput`, so it is dead-lettered).
The memory write's `payload_json` is UTF-8 JSON (`ensure_ascii=False`): a CJK message is not
doubled by `\\uXXXX` escapes on its way to `memory.writes`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from soma.contracts.ids import derive_id
from streams.errors import InvalidInput
from streams.logic.ids import remember
from streams.logic.output import Output

MAX_PENDING_CALLS = 256  # tool calls of one session awaiting their results


@dataclass(frozen=True)
class Reply:
    """What a responder answers: an assistant message, optionally asking for tools."""

    content: str
    tool_calls: Sequence[Mapping[str, str]] = ()


@dataclass(frozen=True)
class SessionState:
    message_count: int = 0
    last_sequence: int = 0
    reserved_sequence: int = 0  # sequences handed out to messages this worker produces
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # call_id -> {tool, requested_by}
    seen: list[str] = field(default_factory=list)

    def next_sequence(self) -> int:
        return max(self.last_sequence, self.reserved_sequence) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_count": self.message_count, "last_sequence": self.last_sequence,
            "reserved_sequence": self.reserved_sequence, "pending": self.pending, "seen": self.seen,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SessionState:
        if not data:
            return cls()
        return cls(
            int(data["message_count"]), int(data["last_sequence"]), int(data["reserved_sequence"]),
            {k: dict(v) for k, v in data["pending"].items()}, list(data["seen"]),
        )


def _memory_write(msg: Mapping[str, Any], message_count: int) -> Output:
    payload = {
        "session_message_count": message_count,
        "role": msg["role"], "content": msg["content"], "sequence": msg["sequence"],
        "tool_calls": [dict(c) for c in msg.get("tool_calls") or []] or None,
        "tool_call_id": msg.get("tool_call_id"), "message_event_id": msg["event_id"],
    }
    return Output("memory.writes", {
        "event_id": derive_id(str(msg["event_id"]), "memory"),
        "occurred_at": msg["occurred_at"],
        "memory_key": f"chat:{msg['session_id']}:{int(msg['sequence']):012d}",
        "session_id": msg["session_id"],
        "operation": "upsert",
        "payload_json": json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False),
        "source_event_id": msg["event_id"],
    })


def wants_reply(state: SessionState, msg: Mapping[str, Any]) -> bool:
    """A responder is asked after a user message, or a tool message that answered the last pending call."""
    if msg["role"] == "user":
        return not msg.get("tool_calls")
    return msg["role"] == "tool" and not state.pending


def on_message(
    state: SessionState, msg: Mapping[str, Any], *, window: int, reply: Reply | None = None,
    tool_timeout_ms: int = 5000,
) -> tuple[SessionState, list[Output]]:
    event_id = str(msg["event_id"])
    if event_id in state.seen:
        return state, []
    pending = dict(state.pending)
    outputs = [_memory_write(msg, state.message_count + 1)]
    if msg["role"] in ("user", "assistant"):
        for call in msg.get("tool_calls") or []:
            pending[call["call_id"]] = {"tool": call["tool"], "requested_by": event_id}
            if len(pending) > MAX_PENDING_CALLS:
                raise InvalidInput(f"session {msg['session_id']!r}: more than {MAX_PENDING_CALLS} tool calls pending")
            outputs.append(Output("tool.requests", {
                "event_id": derive_id(event_id, f"tool:{call['call_id']}"),
                "occurred_at": msg["occurred_at"],
                "session_id": msg["session_id"],
                "call_id": call["call_id"],
                "tool": call["tool"],
                "arguments_json": call["arguments_json"],
                "timeout_ms": tool_timeout_ms,
                "requested_by": event_id,
            }))
    new = replace(
        state,
        message_count=state.message_count + 1,
        last_sequence=max(state.last_sequence, int(msg["sequence"])),
        pending=pending,
        seen=remember(state.seen, event_id, window),
    )
    if reply is not None:
        sequence = new.next_sequence()
        outputs.append(Output("chat.messages", {
            "event_id": derive_id(event_id, "reply"),
            "occurred_at": msg["occurred_at"],
            "session_id": msg["session_id"],
            "sequence": sequence,
            "role": "assistant",
            "content": reply.content,
            "tool_calls": [dict(c) for c in reply.tool_calls] or None,
            "tool_call_id": None,
        }))
        new = replace(new, reserved_sequence=sequence)
    return new, outputs


def on_tool_result(state: SessionState, result: Mapping[str, Any], *, window: int) -> tuple[SessionState, list[Output]]:
    event_id = str(result["event_id"])
    call_id = str(result["call_id"])
    if event_id in state.seen or call_id not in state.pending:
        return state, []  # a duplicate, or an answer to a call this session never made (or already folded)
    status = result["status"]
    content = (result.get("output") or "") if status == "ok" else f"{status}: {result.get('error') or ''}".strip()
    sequence = state.next_sequence()
    pending = {k: v for k, v in state.pending.items() if k != call_id}
    message = Output("chat.messages", {
        "event_id": derive_id(event_id, "message"),
        "occurred_at": result["occurred_at"],
        "session_id": result["session_id"],
        "sequence": sequence,
        "role": "tool",
        "content": content,
        "tool_calls": None,
        "tool_call_id": call_id,
    })
    new = replace(state, reserved_sequence=sequence, pending=pending, seen=remember(state.seen, event_id, window))
    return new, [message]


def decide(
    state: SessionState, topic: str, value: Mapping[str, Any], *, window: int,
    respond: Callable[[SessionState, Mapping[str, Any]], Reply | None],
) -> tuple[SessionState, list[Output]]:
    """The session's next state and the outputs of one input (unchanged state: a duplicate).

    `respond` (the responder) is asked only for a new input that wants a reply."""
    if topic == "tool.results":
        return on_tool_result(state, value, window=window)
    reply = None
    if str(value["event_id"]) not in state.seen and wants_reply(state, value):
        reply = respond(state, value)
    return on_message(state, value, window=window, reply=reply)
