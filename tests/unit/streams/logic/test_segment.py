"""Segment boundaries: dwell-held leader changes, confidence drops, and the HMM mode."""

from __future__ import annotations

from typing import Any

from streams.logic.segment import BOUNDARY, STEADY, SegmenterParams, SegmenterState, decide, viterbi


def frame(seq: int, leader: str, weight: float) -> dict[str, Any]:
    other = "x" if leader != "x" else "y"
    return {"event_id": f"f{seq}", "frame_seq": seq, "occurred_at": 1000 * seq, "leader": leader,
            "weights": {leader: weight, other: 1 - weight}}


def run(frames: list[dict[str, Any]], params: SegmenterParams) -> tuple[SegmenterState, list[dict[str, Any]]]:
    state, out = SegmenterState(), []
    for f in frames:
        state, segs = decide(state, f, params)
        out.extend(segs)
    return state, out


def test_leader_change_must_hold_for_dwell_frames() -> None:
    params = SegmenterParams(dwell=3, drop=0.9)
    frames = [frame(1, "a", 0.8), frame(2, "a", 0.8), frame(3, "b", 0.6), frame(4, "a", 0.7),  # blip: no boundary
              frame(5, "b", 0.6), frame(6, "b", 0.6), frame(7, "b", 0.7), frame(8, "b", 0.7)]
    _, segs = run(frames, params)
    assert len(segs) == 1
    seg = segs[0]
    assert seg["boundary_kind"] == "leader_change"
    assert (seg["start_frame_seq"], seg["end_frame_seq"]) == (1, 4)
    assert (seg["started_at"], seg["ended_at"]) == (1000, 4000)
    assert (seg["leader_before"], seg["leader_after"]) == ("a", "b")


def test_dwell_one_is_immediate() -> None:
    _, segs = run([frame(1, "a", 0.8), frame(2, "b", 0.8)], SegmenterParams(dwell=1, drop=0.9))
    assert [(s["start_frame_seq"], s["end_frame_seq"]) for s in segs] == [(1, 1)]


def test_confidence_drop_past_threshold() -> None:
    params = SegmenterParams(dwell=3, drop=0.3)
    frames = [frame(1, "a", 0.9), frame(2, "a", 0.85), frame(3, "a", 0.5), frame(4, "a", 0.45)]
    state, segs = run(frames, params)
    assert [s["boundary_kind"] for s in segs] == ["confidence_drop"]
    assert (segs[0]["start_frame_seq"], segs[0]["end_frame_seq"]) == (1, 2)
    assert abs(segs[0]["score"] - 0.35) < 1e-9
    assert state.start is not None
    assert state.start.seq == 3


def test_duplicates_change_nothing_and_state_roundtrips() -> None:
    params = SegmenterParams(dwell=2, drop=0.3)
    frames = [frame(1, "a", 0.9), frame(2, "b", 0.9), frame(2, "b", 0.9), frame(3, "b", 0.9)]
    state, segs = run(frames, params)
    assert len(segs) == 1
    assert SegmenterState.from_dict(state.to_dict()) == state


def test_viterbi_prefers_steady_for_isolated_noise_and_boundary_for_bursts() -> None:
    params = SegmenterParams(enter_p=0.05, exit_p=0.7, emit_boundary=0.9, emit_steady=0.1)
    assert viterbi([0, 0, 0, 0], params) == [STEADY] * 4
    assert viterbi([0, 0, 1, 1, 1], params)[-1] == BOUNDARY
    assert viterbi([], params) == []


def test_hmm_mode_emits_on_entering_boundary() -> None:
    params = SegmenterParams(mode="hmm", drop=0.3, enter_p=0.2, exit_p=0.7, emit_boundary=0.9, emit_steady=0.1)
    frames = [frame(1, "a", 0.9), frame(2, "a", 0.9), frame(3, "b", 0.9), frame(4, "a", 0.9), frame(5, "a", 0.9)]
    _, segs = run(frames, params)
    assert segs
    assert all(s["boundary_kind"] == "hmm" for s in segs)
    assert segs[0]["start_frame_seq"] == 1
