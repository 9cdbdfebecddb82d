"""One contract for every stream's decision function, whatever the stream.

Each stateful stream decides with a pure function `(state, input) -> (new state, outputs)`
(`streams.logic`); its agent only iterates, sends the outputs, waits for them, then writes the
state. That order is safe only if the function keeps these promises, checked here on a script
of inputs for every stream:

- redelivery of an already-applied input is a no-op: state unchanged, no outputs (they were
  delivered before the state recording the input was written);
- deciding is deterministic: the same state and input give the same outputs and ids, so a redone
  input (its state lost before it was written) produces the very records it produced before;
- state round-trips through its serialized form (the JSON of the changelog), and the
  round-tripped state decides exactly as the original.

The tools stream (stateless: its result id is derived from the request's) and the replicator
(idempotent in PostgreSQL, `streams.storage.replica`) keep no stream state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from streams.logic import integrate, segment, session
from streams.logic.responders import EchoResponder


@dataclass(frozen=True)
class Contract:
    name: str
    decide: Callable[[Any, Any], tuple[Any, list[Any]]]  # (state, input) -> (new state, outputs)
    load: Callable[[Any], Any]  # the state from its serialized (JSON) form; None: a new key
    inputs: Sequence[Any]  # a script whose every input changes the state


# --- worker: chat messages and tool results fold into a session -----------------------------------------
def _message(eid: str, seq: int, role: str = "user", calls: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"event_id": eid, "occurred_at": 1000 + seq, "session_id": "s1", "sequence": seq, "role": role,
            "content": f"m{seq}", "tool_calls": calls, "tool_call_id": None}


def _worker_decide(state: session.SessionState, item: tuple[str, dict[str, Any]]) -> Any:
    topic, value = item
    return session.decide(state, topic, value, window=16, respond=EchoResponder().respond)


WORKER = Contract("worker", _worker_decide, session.SessionState.from_dict, [
    ("chat.messages", _message("m1", 1, calls=[{"call_id": "c1", "tool": "calc", "arguments_json": "{}"}])),
    ("tool.results", {"event_id": "r1", "occurred_at": 2000, "session_id": "s1", "call_id": "c1", "tool": "calc",
                      "status": "ok", "output": "42", "error": None, "duration_ms": 3}),
    ("chat.messages", _message("m2", 3)),
    ("chat.messages", _message("m3", 4, role="assistant")),
])


# --- integrator: predictor updates fold into a tenant's smoothed confidences and frame -------------------
INTEGRATOR_PARAMS = integrate.IntegratorParams(alpha=0.5, temperature=0.7, dedupe_window=8)


def _integrator_decide(state: integrate.IntegratorState, item: tuple[int, dict[str, Any]]) -> Any:
    offset, update = item
    proposal = integrate.propose(state, update, INTEGRATOR_PARAMS, offset=offset)
    if proposal is None:
        return state, []
    new_state, frame = integrate.commit(state, proposal, allowed=True)
    return new_state, [frame]


def _update(offset: int, domain: str, confidence: float) -> tuple[int, dict[str, Any]]:
    return offset, {"event_id": f"u{offset}", "domain": domain, "confidence": confidence}


INTEGRATOR = Contract("integrator", _integrator_decide, integrate.IntegratorState.from_dict, [
    _update(0, "planning", 0.9), _update(1, "memory", 0.4), _update(2, "memory", 3.0), _update(3, "planning", 0.1),
])


# --- segmenter: global frames fold into the open segment ---------------------------------------------------
SEGMENTER_PARAMS = segment.SegmenterParams(dwell=2, drop=0.3, dedupe_window=8)


def _segmenter_decide(state: segment.SegmenterState, frame: dict[str, Any]) -> Any:
    return segment.decide(state, frame, SEGMENTER_PARAMS)


def _frame(seq: int, leader: str, weight: float) -> dict[str, Any]:
    other = "memory" if leader == "planning" else "planning"
    return {"event_id": f"f{seq}", "frame_seq": seq, "occurred_at": 1000 * seq, "leader": leader,
            "weights": {leader: weight, other: round(1 - weight, 6)}}


SEGMENTER = Contract("segmenter", _segmenter_decide, segment.SegmenterState.from_dict, [
    _frame(1, "planning", 0.9), _frame(2, "planning", 0.85), _frame(3, "memory", 0.6), _frame(4, "memory", 0.7),
    _frame(5, "memory", 0.2),
])

CONTRACTS = [WORKER, INTEGRATOR, SEGMENTER]


def _run(contract: Contract) -> list[tuple[Any, Any, list[Any]]]:
    """(state before, new state, outputs) of every input of the script, from a new key's state."""
    steps = []
    state = contract.load(None)
    for item in contract.inputs:
        new_state, outputs = contract.decide(state, item)
        steps.append((state, new_state, outputs))
        state = new_state
    return steps


@pytest.fixture(params=CONTRACTS, ids=[c.name for c in CONTRACTS])
def contract(request: pytest.FixtureRequest) -> Contract:
    return request.param  # type: ignore[no-any-return]


def test_every_input_of_the_script_is_applied(contract: Contract) -> None:
    steps = _run(contract)
    assert all(before != after for before, after, _ in steps)
    assert any(outputs for _, _, outputs in steps)  # the script exercises outputs, not only state


def test_redelivery_of_an_applied_input_is_a_no_op(contract: Contract) -> None:
    steps = _run(contract)
    for index, (_, state, _) in enumerate(steps):
        for item in contract.inputs[: index + 1]:  # the last input again, and every earlier one
            assert contract.decide(state, item) == (state, [])


def test_deciding_is_deterministic_ids_included(contract: Contract) -> None:
    for item, (before, after, outputs) in zip(contract.inputs, _run(contract), strict=True):
        assert contract.decide(before, item) == (after, outputs)


def test_state_round_trips_through_its_serialized_form(contract: Contract) -> None:
    assert contract.load(None) == _run(contract)[0][0]  # no value yet: the initial state
    for item, (before, after, outputs) in zip(contract.inputs, _run(contract), strict=True):
        for state in (before, after):
            assert contract.load(json.loads(json.dumps(state.to_dict()))) == state
        restored = contract.load(json.loads(json.dumps(before.to_dict())))
        assert contract.decide(restored, item) == (after, outputs)
