"""Segment boundaries over a tenant's global frames.

Threshold mode: a leader change that holds for `dwell` frames closes the segment
(`leader_change`), and so does a drop of the segment leader's weight by at least `drop`
between two frames (`confidence_drop`). HMM mode: each frame yields a change signal (leader
changed or weight dropped past `drop`); a two-state HMM (steady / boundary) is decoded with
Viterbi over the last `window` signals, and a frame whose decoded state enters `boundary`
closes the segment (`hmm`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from streams.logic.ids import remember

STEADY, BOUNDARY = 0, 1


@dataclass(frozen=True)
class SegmenterParams:
    mode: str = "threshold"
    dwell: int = 3
    drop: float = 0.3
    enter_p: float = 0.05
    exit_p: float = 0.7
    emit_boundary: float = 0.9
    emit_steady: float = 0.1
    window: int = 16
    dedupe_window: int = 256


@dataclass(frozen=True)
class Mark:
    seq: int
    at: int  # occurred_at, ms


@dataclass(frozen=True)
class SegmenterState:
    start: Mark | None = None  # first frame of the open segment
    last: Mark | None = None  # previous frame
    leader: str | None = None  # leader of the open segment
    last_weight: float = 0.0  # the segment leader's weight in the previous frame
    candidate: str | None = None  # a new leader not yet held for `dwell` frames
    candidate_start: Mark | None = None
    candidate_before: Mark | None = None  # last frame of the open segment before the candidate appeared
    candidate_count: int = 0
    signals: list[int] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def mark(m: Mark | None) -> list[int] | None:
            return None if m is None else [m.seq, m.at]

        return {
            "start": mark(self.start), "last": mark(self.last), "leader": self.leader,
            "last_weight": self.last_weight, "candidate": self.candidate,
            "candidate_start": mark(self.candidate_start), "candidate_before": mark(self.candidate_before),
            "candidate_count": self.candidate_count,
            "signals": self.signals, "seen": self.seen,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SegmenterState:
        if not data:
            return cls()

        def mark(v: Any) -> Mark | None:
            return None if v is None else Mark(int(v[0]), int(v[1]))

        return cls(
            mark(data["start"]), mark(data["last"]), data["leader"], float(data["last_weight"]),
            data["candidate"], mark(data["candidate_start"]), mark(data["candidate_before"]),
            int(data["candidate_count"]),
            list(data["signals"]), list(data["seen"]),
        )


def viterbi(signals: Sequence[int], params: SegmenterParams) -> list[int]:
    """Most likely steady/boundary path for the signals (log space; starts steady)."""
    if not signals:
        return []
    log = math.log
    trans = [
        [log(1 - params.enter_p), log(params.enter_p)],
        [log(params.exit_p), log(1 - params.exit_p)],
    ]

    def emit(state: int, signal: int) -> float:
        p = params.emit_boundary if state == BOUNDARY else params.emit_steady
        return log(p if signal else 1 - p)

    score = [log(1 - params.enter_p) + emit(STEADY, signals[0]), log(params.enter_p) + emit(BOUNDARY, signals[0])]
    back: list[list[int]] = []
    for signal in signals[1:]:
        step, nxt = [], []
        for s in (STEADY, BOUNDARY):
            prev = max((STEADY, BOUNDARY), key=lambda p, s=s: score[p] + trans[p][s])  # type: ignore[misc]
            step.append(prev)
            nxt.append(score[prev] + trans[prev][s] + emit(s, signal))
        back.append(step)
        score = nxt
    state = STEADY if score[STEADY] >= score[BOUNDARY] else BOUNDARY
    path = [state]
    for step in reversed(back):
        state = step[state]
        path.append(state)
    path.reverse()
    return path


def _segment(state: SegmenterState, kind: str, end: Mark, after: str, score: float) -> dict[str, Any]:
    start = state.start if state.start is not None else end
    return {
        "boundary_kind": kind,
        "start_frame_seq": start.seq,
        "end_frame_seq": end.seq,
        "started_at": start.at,
        "ended_at": end.at,
        "leader_before": state.leader,
        "leader_after": after,
        "score": float(score),
    }


def decide(
    state: SegmenterState, frame: Mapping[str, Any], params: SegmenterParams
) -> tuple[SegmenterState, list[dict[str, Any]]]:
    """Fold one GlobalFrame in; returns the new state and the Segment fields to emit (0 or 1)."""
    event_id = str(frame["event_id"])
    if event_id in state.seen:
        return state, []
    seen = remember(state.seen, event_id, params.dedupe_window)
    here = Mark(int(frame["frame_seq"]), int(frame["occurred_at"]))
    leader = str(frame["leader"])
    weights: Mapping[str, float] = frame["weights"]
    if state.start is None or state.leader is None:
        return SegmenterState(here, here, leader, float(weights.get(leader, 0.0)), seen=seen), []
    prev = state.last if state.last is not None else here
    weight_now = float(weights.get(state.leader, 0.0))
    drop = state.last_weight - weight_now
    if params.mode == "hmm":
        signal = 1 if leader != state.leader or drop >= params.drop else 0
        signals = [*state.signals, signal][-params.window:]
        path = viterbi(signals, params)
        entered = path[-1] == BOUNDARY and (len(path) < 2 or path[-2] == STEADY)
        if entered:
            out = _segment(state, "hmm", prev, leader, max(drop, 0.0) if leader == state.leader else 1.0)
            fresh = SegmenterState(here, here, leader, float(weights.get(leader, 0.0)), signals=signals, seen=seen)
            return fresh, [out]
        return replace(state, last=here, last_weight=weight_now, signals=signals, seen=seen), []
    if leader != state.leader:
        if leader == state.candidate and state.candidate_start is not None and state.candidate_before is not None:
            count, cstart, before = state.candidate_count + 1, state.candidate_start, state.candidate_before
        else:
            count, cstart, before = 1, here, prev
        if count >= params.dwell:
            out = _segment(state, "leader_change", before, leader, float(weights.get(leader, 0.0)))
            return SegmenterState(cstart, here, leader, float(weights.get(leader, 0.0)), seen=seen), [out]
        return replace(
            state, last=here, last_weight=weight_now, candidate=leader, candidate_start=cstart,
            candidate_before=before, candidate_count=count, seen=seen,
        ), []
    if drop >= params.drop:
        out = _segment(state, "confidence_drop", prev, leader, drop)
        return SegmenterState(here, here, leader, weight_now, seen=seen), [out]
    return replace(state, last=here, last_weight=weight_now, candidate=None, candidate_start=None,
                   candidate_before=None, candidate_count=0, seen=seen), []
