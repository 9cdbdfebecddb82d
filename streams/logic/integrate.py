"""The integrator's math: EMA-smoothed confidences, a numerically stable softmax, the leader.

`propose(state, update, params)` computes the next frame without deciding a veto; the agent
asks the policy (OPA) only when the proposal changes the leader, then `commit(state, proposal,
allowed)` gives the new state and the frame to emit. A tenant's state is bounded: at most
`MAX_DOMAINS` domains (an update naming one more is refused, `InvalidInput`: dead-lettered) and
the dedupe window of ids.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from streams.errors import InvalidInput
from streams.logic.ids import remember

MIN_TEMPERATURE = 1e-9
MAX_DOMAINS = 256  # domains one tenant's state (and frame) holds; an update naming one more is refused


def softmax(scores: Mapping[str, float], temperature: float) -> dict[str, float]:
    """Weights summing to 1; stable for huge scores, temperatures near 0 and a single domain."""
    if not scores:
        return {}
    t = max(float(temperature), MIN_TEMPERATURE)
    top = max(scores.values())
    # Differences first: (x - max) is finite for finite x, so nothing overflows.
    shifted = {k: (v - top) / t for k, v in scores.items()}
    exps = {k: math.exp(s) if s > -745.0 else 0.0 for k, s in shifted.items()}
    total = math.fsum(exps.values())  # >= 1: the top score contributes exp(0)
    return {k: v / total for k, v in exps.items()}


def entropy(weights: Mapping[str, float]) -> float:
    """Shannon entropy in nats (0 for a certain choice)."""
    return max(0.0, -math.fsum(p * math.log(p) for p in weights.values() if p > 0.0))


def leader_of(weights: Mapping[str, float]) -> str:
    """The most probable domain; ties go to the smallest name (deterministic)."""
    return min(weights, key=lambda k: (-weights[k], k))


def ema(previous: float | None, value: float, alpha: float) -> float:
    return value if previous is None else alpha * value + (1.0 - alpha) * previous


@dataclass(frozen=True)
class IntegratorParams:
    alpha: float
    temperature: float
    dedupe_window: int = 256


@dataclass(frozen=True)
class IntegratorState:
    smoothed: dict[str, float] = field(default_factory=dict)
    leader: str | None = None
    frame_seq: int = 0
    seen: list[str] = field(default_factory=list)
    applied_offset: int = -1  # source offset of the last applied update (the tenant's partition is fixed)

    def to_dict(self) -> dict[str, Any]:
        return {"smoothed": self.smoothed, "leader": self.leader, "frame_seq": self.frame_seq, "seen": self.seen,
                "applied_offset": self.applied_offset}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> IntegratorState:
        if not data:
            return cls()
        return cls(dict(data["smoothed"]), data.get("leader"), int(data["frame_seq"]), list(data.get("seen", [])),
                    int(data.get("applied_offset", -1)))


@dataclass(frozen=True)
class Proposal:
    event_id: str
    offset: int
    smoothed: dict[str, float]
    weights: dict[str, float]
    candidate: str
    previous: str | None
    params: IntegratorParams

    @property
    def leader_changes(self) -> bool:
        return self.previous is not None and self.candidate != self.previous


def propose(
    state: IntegratorState, update: Mapping[str, Any], params: IntegratorParams, offset: int = -1
) -> Proposal | None:
    """The frame this update would produce, or None when it was already applied.

    Already applied: a redelivery (its source `offset` is not past the last applied one) or a
    replay of an id among the last `dedupe_window` applied ones.
    """
    event_id = str(update["event_id"])
    if (offset >= 0 and offset <= state.applied_offset) or event_id in state.seen:
        return None
    confidence = float(update["confidence"])
    if not math.isfinite(confidence):
        raise InvalidInput(f"confidence must be finite, got {confidence!r}")
    domain = str(update["domain"])
    smoothed = dict(state.smoothed)
    if params.alpha == 0.0 and domain not in smoothed:
        pass  # asleep (η = 0): learns nothing, a domain it does not know yet included
    elif domain not in state.smoothed and len(state.smoothed) >= MAX_DOMAINS:
        raise InvalidInput(f"domain {domain[:100]!r} refused: the tenant already has {MAX_DOMAINS} domains")
    else:
        smoothed[domain] = ema(smoothed.get(domain), confidence, params.alpha)
    weights = softmax(smoothed, params.temperature)
    if not weights:
        raise InvalidInput("no domain learned yet and nothing to learn (η = 0)")
    return Proposal(event_id, offset, smoothed, weights, leader_of(weights), state.leader, params)


def commit(state: IntegratorState, proposal: Proposal, allowed: bool = True) -> tuple[IntegratorState, dict[str, Any]]:
    """The new state and the GlobalFrame fields (without envelope) for an accepted or vetoed proposal."""
    vetoed = proposal.leader_changes and not allowed
    leader = proposal.previous if vetoed and proposal.previous is not None else proposal.candidate
    new_state = replace(
        state,
        smoothed=proposal.smoothed,
        leader=leader,
        frame_seq=state.frame_seq + 1,
        seen=remember(state.seen, proposal.event_id, proposal.params.dedupe_window),
        applied_offset=max(state.applied_offset, proposal.offset),
    )
    frame = {
        "frame_seq": new_state.frame_seq,
        "leader": leader,
        "previous_leader": proposal.previous,
        "weights": proposal.weights,
        "temperature": proposal.params.temperature,
        "entropy": entropy(proposal.weights),
        "alpha": proposal.params.alpha,
        "vetoed": vetoed,
    }
    return new_state, frame
