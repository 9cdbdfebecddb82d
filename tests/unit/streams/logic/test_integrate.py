"""The integrator's math: stable softmax, EMA, leader, proposals and vetoes."""

from __future__ import annotations

import math

import pytest

from streams.errors import InvalidInput
from streams.logic.integrate import (
    IntegratorParams,
    IntegratorState,
    commit,
    ema,
    entropy,
    leader_of,
    propose,
    softmax,
)


def test_softmax_sums_to_one_and_orders() -> None:
    w = softmax({"a": 1.0, "b": 2.0, "c": 0.5}, 1.0)
    assert math.isclose(sum(w.values()), 1.0)
    assert w["b"] > w["a"] > w["c"]


@pytest.mark.parametrize("scale", [1e3, 1e100, 1e300, -1e300])
def test_softmax_is_stable_for_huge_scores(scale: float) -> None:
    w = softmax({"a": scale, "b": scale * 0.5, "c": 0.0}, 1.0)
    assert all(math.isfinite(v) for v in w.values())
    assert math.isclose(sum(w.values()), 1.0)


@pytest.mark.parametrize("temperature", [1e-12, 1e-300, 0.0])
def test_softmax_temperature_near_zero_is_argmax(temperature: float) -> None:
    w = softmax({"a": 1.0, "b": 1.0000001, "c": -5.0}, temperature)
    assert w["b"] == pytest.approx(1.0)
    assert math.isclose(sum(w.values()), 1.0)


def test_softmax_single_domain_and_empty() -> None:
    assert softmax({"only": 123.0}, 0.5) == {"only": 1.0}
    assert softmax({}, 1.0) == {}


def test_high_temperature_is_near_uniform() -> None:
    w = softmax({"a": 1.0, "b": 2.0}, 1e6)
    assert w["a"] == pytest.approx(0.5, abs=1e-5)
    assert entropy(w) == pytest.approx(math.log(2), abs=1e-6)


def test_entropy_of_a_certain_choice_is_zero() -> None:
    assert entropy({"a": 1.0, "b": 0.0}) == 0.0


def test_leader_ties_break_by_name() -> None:
    assert leader_of({"b": 0.5, "a": 0.5}) == "a"


def test_ema() -> None:
    assert ema(None, 3.0, 0.2) == 3.0
    assert ema(1.0, 3.0, 0.5) == 2.0


def _update(eid: str, domain: str, confidence: float) -> dict:
    return {"event_id": eid, "domain": domain, "confidence": confidence}


def test_propose_commit_tracks_leader_and_frame_seq() -> None:
    params = IntegratorParams(alpha=1.0, temperature=1.0)
    state = IntegratorState()
    p = propose(state, _update("e1", "a", 1.0), params)
    assert p is not None
    assert not p.leader_changes
    state, frame = commit(state, p)
    assert frame["leader"] == "a"
    assert frame["frame_seq"] == 1
    assert frame["previous_leader"] is None
    p = propose(state, _update("e2", "b", 5.0), params)
    assert p is not None
    assert p.leader_changes
    state, frame = commit(state, p, allowed=True)
    assert frame["leader"] == "b"
    assert frame["previous_leader"] == "a"
    assert frame["frame_seq"] == 2


def test_veto_keeps_the_previous_leader() -> None:
    params = IntegratorParams(alpha=1.0, temperature=1.0)
    state, _ = commit(IntegratorState(), propose(IntegratorState(), _update("e1", "a", 1.0), params))  # type: ignore[arg-type]
    p = propose(state, _update("e2", "b", 5.0), params)
    assert p is not None
    state, frame = commit(state, p, allowed=False)
    assert frame["leader"] == "a"
    assert frame["vetoed"] is True
    assert state.leader == "a"
    assert frame["weights"]["b"] > frame["weights"]["a"]


def test_duplicate_update_is_ignored_and_state_roundtrips() -> None:
    params = IntegratorParams(alpha=0.5, temperature=1.0)
    p = propose(IntegratorState(), _update("e1", "a", 1.0), params)
    assert p is not None
    state, _ = commit(IntegratorState(), p)
    assert propose(state, _update("e1", "a", 1.0), params) is None
    assert IntegratorState.from_dict(state.to_dict()) == state


def test_non_finite_confidence_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        propose(IntegratorState(), _update("e1", "a", math.inf), IntegratorParams(0.5, 1.0))


def test_dedupe_window_is_bounded() -> None:
    params = IntegratorParams(alpha=0.5, temperature=1.0, dedupe_window=3)
    state = IntegratorState()
    for i in range(10):
        p = propose(state, _update(f"e{i}", "a", float(i)), params)
        assert p is not None
        state, _ = commit(state, p)
    assert state.seen == ["e7", "e8", "e9"]


def test_redelivery_is_caught_by_source_offset() -> None:
    params = IntegratorParams(alpha=0.5, temperature=1.0, dedupe_window=1)
    state = IntegratorState()
    for offset, eid in enumerate(["e0", "e1", "e2"]):
        p = propose(state, _update(eid, "a", 1.0), params, offset=offset)
        assert p is not None
        state, _ = commit(state, p)
    assert state.applied_offset == 2
    assert propose(state, _update("e0", "a", 1.0), params, offset=0) is None  # id long out of the window
    assert propose(state, _update("e3", "a", 1.0), params, offset=3) is not None


def test_a_tenants_domains_are_bounded() -> None:
    from streams.logic.integrate import MAX_DOMAINS

    state = IntegratorState(smoothed={f"d{i}": 0.0 for i in range(MAX_DOMAINS)})
    params = IntegratorParams(alpha=0.5, temperature=1.0)
    assert propose(state, _update("e1", "d0", 1.0), params) is not None  # a known domain still updates
    with pytest.raises(InvalidInput, match=f"already has {MAX_DOMAINS} domains"):
        propose(state, _update("e2", "one-more", 1.0), params)


def test_asleep_with_eta_zero_nothing_is_learned_and_no_domain_is_added() -> None:
    awake = IntegratorParams(alpha=0.5, temperature=1.0)
    state = IntegratorState()
    for i, (domain, confidence) in enumerate((("plan", 1.0), ("act", 0.2))):
        proposal = propose(state, {"event_id": f"a{i}", "domain": domain, "confidence": confidence}, awake)
        assert proposal is not None
        state, _ = commit(state, proposal)
    deep = IntegratorParams(alpha=0.0, temperature=1.0)
    for i, (domain, confidence) in enumerate((("act", 100.0), ("plan", 0.0), ("new", 50.0))):
        proposal = propose(state, {"event_id": f"d{i}", "domain": domain, "confidence": confidence}, deep)
        assert proposal is not None
        assert proposal.smoothed == state.smoothed
        assert proposal.candidate == "plan"
        state, frame = commit(state, proposal)
        assert frame["alpha"] == 0.0
    assert set(state.smoothed) == {"plan", "act"}
    with pytest.raises(InvalidInput, match="nothing to learn"):
        propose(IntegratorState(), {"event_id": "x", "domain": "plan", "confidence": 1.0}, deep)
