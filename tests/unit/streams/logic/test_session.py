"""Session folding: counts, tool calls, tool results as role=tool messages, dedupe by event id."""

from __future__ import annotations

import json
from typing import Any

from soma.contracts.ids import derive_id
from streams.logic.session import Reply, SessionState, on_message, on_tool_result, wants_reply


def msg(eid: str, seq: int, role: str = "user", calls: list[dict[str, str]] | None = None, **extra: Any) -> dict:
    return {"event_id": eid, "occurred_at": 1000, "session_id": "s1", "sequence": seq, "role": role,
            "content": f"m{seq}", "tool_calls": calls, "tool_call_id": None, **extra}


def result(eid: str, call_id: str, status: str = "ok", output: str | None = "42") -> dict:
    return {"event_id": eid, "occurred_at": 2000, "session_id": "s1", "call_id": call_id, "tool": "calc",
            "status": status, "output": output, "error": None if status == "ok" else "boom", "duration_ms": 3}


CALL = {"call_id": "c1", "tool": "calc", "arguments_json": '{"a": 1, "b": 2}'}


def test_message_with_tool_call_emits_memory_write_and_tool_request() -> None:
    state, outs = on_message(SessionState(), msg("m1", 1, calls=[CALL]), window=10)
    assert [o.topic for o in outs] == ["memory.writes", "tool.requests"]
    assert outs[0].event["event_id"] == derive_id("m1", "memory")
    assert json.loads(outs[0].event["payload_json"])["content"] == "m1"
    assert outs[1].event["call_id"] == "c1"
    assert outs[1].event["requested_by"] == "m1"
    assert state.message_count == 1
    assert state.last_sequence == 1
    assert "c1" in state.pending


def test_tool_result_folds_into_a_tool_message_once() -> None:
    state, _ = on_message(SessionState(), msg("m1", 1, calls=[CALL]), window=10)
    state, outs = on_tool_result(state, result("r1", "c1"), window=10)
    assert len(outs) == 1
    tool_msg = outs[0].event
    assert outs[0].topic == "chat.messages"
    assert tool_msg["role"] == "tool"
    assert tool_msg["tool_call_id"] == "c1"
    assert tool_msg["content"] == "42"
    assert tool_msg["sequence"] == 2
    assert tool_msg["event_id"] == derive_id("r1", "message")
    assert state.pending == {}
    again, more = on_tool_result(state, result("r1", "c1"), window=10)
    assert (again, more) == (state, [])
    # The tool message coming back through chat.messages is counted and written to memory.
    state, outs = on_message(state, tool_msg, window=10)
    assert state.message_count == 2
    assert [o.topic for o in outs] == ["memory.writes"]


def test_error_result_text() -> None:
    state, _ = on_message(SessionState(), msg("m1", 1, calls=[CALL]), window=10)
    _, outs = on_tool_result(state, result("r1", "c1", status="timeout", output=None), window=10)
    assert outs[0].event["content"] == "timeout: boom"


def test_unknown_call_is_ignored() -> None:
    assert on_tool_result(SessionState(), result("r1", "nope"), window=10) == (SessionState(), [])


def test_duplicate_message_changes_nothing() -> None:
    state, _ = on_message(SessionState(), msg("m1", 1), window=10)
    again, outs = on_message(state, msg("m1", 1), window=10)
    assert again == state
    assert outs == []
    assert SessionState.from_dict(state.to_dict()) == state


def test_reply_gets_the_next_sequence_and_a_derived_id() -> None:
    state, _ = on_message(SessionState(), msg("m1", 5), window=10)
    assert wants_reply(state, msg("m2", 6))
    state, outs = on_message(state, msg("m2", 6), window=10, reply=Reply("hello"))
    reply = outs[-1].event
    assert reply["role"] == "assistant"
    assert reply["sequence"] == 7
    assert reply["event_id"] == derive_id("m2", "reply")
    assert state.next_sequence() == 8


def test_wants_reply_waits_for_pending_tools() -> None:
    state, _ = on_message(SessionState(), msg("m1", 1, calls=[CALL]), window=10)
    assert not wants_reply(state, msg("m1", 1, calls=[CALL]))
    assert not wants_reply(state, msg("t", 2, role="tool"))


def test_pending_tool_calls_of_a_session_are_bounded() -> None:
    import pytest

    from streams.errors import InvalidInput
    from streams.logic.session import MAX_PENDING_CALLS

    calls = [{"call_id": f"c{i}", "tool": "calc", "arguments_json": "{}"} for i in range(MAX_PENDING_CALLS)]
    state, _ = on_message(SessionState(), msg("e1", 1, calls=calls), window=16)
    assert len(state.pending) == MAX_PENDING_CALLS
    with pytest.raises(InvalidInput, match=f"more than {MAX_PENDING_CALLS} tool calls pending"):
        on_message(state, msg("e2", 2, calls=[{"call_id": "one-more", "tool": "calc", "arguments_json": "{}"}]),
                   window=16)


def test_the_memory_write_keeps_non_ascii_text_as_utf8() -> None:
    cjk = "語" * 1000
    _, outputs = on_message(SessionState(), msg("e1", 1, content=cjk), window=16)
    payload_json = outputs[0].event["payload_json"]
    assert cjk in payload_json  # not 6-byte \uXXXX escapes: the write stays about the message's size
    assert json.loads(payload_json)["content"] == cjk
    assert len(payload_json.encode()) < 3 * 1000 + 400
