"""A batch with one poison record: the others are processed, the poison one is dead-lettered, and the batch's
outputs are acknowledged before its states are written (worker and integrator batch paths)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from soma.contracts.limits import RecordTooLarge
from streams.logic.output import Output
from streams.runtime.records import Incoming


class Table(dict[str, Any]):
    """A Faust table as the batch code reads it (`get`)."""


def _message(event_id: str, session: str, **overrides: Any) -> Incoming:
    value = {"event_id": event_id, "tenant_id": "acme", "occurred_at": 1000, "session_id": session, "sequence": 1,
             "role": "user", "content": "hi", "tool_calls": None, "tool_call_id": None, **overrides}
    return Incoming("chat.messages", value, 0, 0, None, b"raw", {"tenant": b"acme"})


def _record_calls(monkeypatch: pytest.MonkeyPatch, stream: Any, log: list[Any]) -> None:
    async def send(outputs: Sequence[Output], cause: Incoming | None = None) -> list[Awaitable[Any]]:
        log.append(("send", cause.event_id if cause else None, [o.topic for o in outputs]))
        return []

    async def acknowledged(futures: Sequence[Awaitable[Any]], what: str) -> None:
        log.append(("acknowledged",))

    async def write_states(staged: Any) -> None:
        log.append(("write_states", sorted(staged.states)))

    async def reject(record: Incoming, exc: BaseException) -> None:
        log.append(("reject", record.event_id, type(exc).__name__))

    for name, fake in (("send", send), ("acknowledged", acknowledged), ("write_states", write_states),
                       ("reject", reject)):
        monkeypatch.setattr(stream, name, fake)


def test_worker_batch_dead_letters_only_the_poison_record(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.worker as worker

    log: list[Any] = []
    _record_calls(monkeypatch, worker.stream, log)
    monkeypatch.setattr(worker, "sessions", Table())

    class Exploding:
        def respond(self, session: Any, message: Any) -> None:
            if message["content"] == "explode":
                raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(worker, "responder", Exploding())
    batch = [_message("e1", "a"), _message("e2", "b", sequence=None), _message("e3", "c", content="explode"),
             _message("e4", "d")]
    asyncio.run(worker.process(batch))
    assert log == [
        ("send", "e1", ["memory.writes"]),
        ("reject", "e2", "TypeError"),
        ("reject", "e3", "RecursionError"),
        ("send", "e4", ["memory.writes"]),
        ("acknowledged",),
        ("write_states", ["acme:a", "acme:d"]),
    ]


def test_integrator_batch_dead_letters_only_the_poison_record(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.integrator as integrator
    from streams.logic.integrate import IntegratorParams

    log: list[Any] = []
    _record_calls(monkeypatch, integrator.stream, log)
    monkeypatch.setattr(integrator, "tenants", Table())
    monkeypatch.setattr(integrator, "params_for", lambda tenant: (IntegratorParams(0.5, 1.0), "awake"))

    def prepare_outputs(outputs: Sequence[Output], cause: Incoming | None = None) -> list[Any]:
        if outputs[0].event["leader"] == "huge":
            raise RecordTooLarge("cog.global_frame: record of 2000000 bytes exceeds the topic's limit")
        return [SimpleNamespace(out=outputs[0])]

    async def send_prepared(items: Sequence[Any]) -> list[Any]:
        log.append(("send", [item.out.event["leader"] for item in items]))
        return []

    monkeypatch.setattr(integrator.stream, "prepare_outputs", prepare_outputs)
    monkeypatch.setattr(integrator.stream, "send_prepared", send_prepared)

    class Pipeline:
        async def __aenter__(self) -> Pipeline:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        def set(self, key: str, value: str, ex: int) -> None:
            log.append(("cache", key))

        async def execute(self) -> None:
            return None

    class Redis:
        def pipeline(self, transaction: bool) -> Pipeline:
            return Pipeline()

    monkeypatch.setattr(integrator, "_redis_client", Redis)

    def update(event_id: str, tenant: str, domain: str, confidence: Any) -> Incoming:
        value = {"event_id": event_id, "tenant_id": tenant, "occurred_at": 1000, "domain": domain,
                 "confidence": confidence}
        return Incoming("cog.predictor_updates", value, 0, int(event_id[1:]), None, b"", {})

    batch = [update("e1", "t1", "plan", 1.0), update("e2", "t2", "x", "not a number"),
             update("e3", "t3", "huge", 1.0), update("e4", "t4", "act", 2.0)]
    asyncio.run(integrator.process(batch))
    assert log == [
        ("reject", "e2", "ValueError"), ("reject", "e3", "RecordTooLarge"),
        ("send", ["plan", "act"]),  # delivered (awaited) first ...
        ("cache", "global_frame:t1"), ("cache", "global_frame:t4"),
        ("write_states", ["t1", "t4"]),  # ... then the states: the refused inputs changed none
    ]


def test_segmenter_batch_folds_frames_in_order_and_dead_letters_only_the_poison_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import streams.segmenter as segmenter
    from streams.logic.segment import SegmenterParams

    log: list[Any] = []
    _record_calls(monkeypatch, segmenter.stream, log)
    monkeypatch.setattr(segmenter, "tenants", Table())
    monkeypatch.setattr(segmenter, "params_for", lambda tenant: SegmenterParams(dwell=1))
    monkeypatch.setattr(segmenter.stream, "param", lambda name, tenant=None: True)

    def frame(event_id: str, tenant: str, seq: int, leader: str, **overrides: Any) -> Incoming:
        value = {"event_id": event_id, "tenant_id": tenant, "occurred_at": 1000 + seq, "frame_seq": seq,
                 "leader": leader, "weights": {leader: 1.0}, **overrides}
        return Incoming("cog.global_frame", value, 0, seq, None, b"", {})

    batch = [frame("f1", "t1", 1, "plan"), frame("f2", "t1", 2, "act"),  # f2 closes t1's segment: f1 folded first
             frame("f3", "t2", 1, "plan", frame_seq="not a number"), frame("f4", "t2", 2, "plan"),
             frame("f2", "t1", 2, "act")]  # a replay within the batch: already applied, nothing sent
    asyncio.run(segmenter.process(batch))
    assert log == [
        ("send", "f1", []),
        ("send", "f2", ["cog.segments"]),
        ("reject", "f3", "ValueError"),
        ("send", "f4", []),
        ("acknowledged",),  # every segment delivered ...
        ("write_states", ["t1", "t2"]),  # ... before the states recording their frames
    ]


def test_tools_batch_acknowledges_every_result_once_after_all_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.tools as tools

    log: list[Any] = []
    _record_calls(monkeypatch, tools.stream, log)
    monkeypatch.setattr(tools.stream, "param", lambda name, tenant=None: 2)

    async def send_prepared(items: Sequence[Any]) -> list[Any]:
        log.append(("send", [item.out.event["call_id"] for item in items]))
        return ["delivery"]

    monkeypatch.setattr(tools.stream, "prepare_outputs",
                        lambda outputs, cause=None: [SimpleNamespace(out=o) for o in outputs])
    monkeypatch.setattr(tools.stream, "send_prepared", send_prepared)

    async def acknowledged(futures: Sequence[Any], what: str) -> None:
        log.append(("acknowledged", len(futures)))

    monkeypatch.setattr(tools.stream, "acknowledged", acknowledged)

    def request(call_id: str, tool: str, timeout_ms: Any = 1000) -> Incoming:
        value = {"event_id": f"e-{call_id}", "tenant_id": "acme", "occurred_at": 1000, "session_id": "s",
                 "call_id": call_id, "tool": tool, "arguments_json": "{}", "timeout_ms": timeout_ms}
        return Incoming("tool.requests", value, 0, 0, None, b"", {})

    asyncio.run(tools.execute_batch([request("c1", "echo"), request("c2", "echo", timeout_ms="soon"),
                                     request("c3", "no-such-tool")]))
    assert sorted(log[:3]) == [("reject", "e-c2", "ValueError"), ("send", ["c1"]), ("send", ["c3"])]
    assert log[3:] == [("acknowledged", 2)]  # one wait for the batch's results, after every call ended
