"""Stall detection: readiness fails only while committed offsets stand still with lag."""

from __future__ import annotations

from streams.logic.stall import StallDetector


def test_stall_fails_readiness_only_when_lag_grows_without_progress() -> None:
    d = StallDetector(stall_after_s=10)
    assert d.observe(0, committed=100, end=100)
    assert d.observe(5, committed=100, end=150)  # lag, but not yet long
    assert not d.observe(11, committed=100, end=160)  # no progress for 11 s, lag grew
    assert d.observe(12, committed=160, end=160)  # progress again


def test_idle_consumer_without_lag_is_ready() -> None:
    d = StallDetector(stall_after_s=1)
    assert d.observe(0, 50, 50)
    assert d.observe(100, 50, 50)


def test_constant_lag_without_progress_is_a_stall() -> None:
    # A consumer that stopped fetching after producers went quiet: the lag neither grows nor shrinks.
    d = StallDetector(stall_after_s=10)
    assert d.observe(0, committed=100, end=900)
    assert d.observe(5, committed=100, end=900)
    assert not d.observe(11, committed=100, end=900)


def test_commits_stuck_behind_lost_records_are_a_stall_once_the_rest_is_done() -> None:
    # The shape of the faust-streaming recovery race (streams/runtime/recovery.py): one partition's commits
    # stop behind records that were dropped, the other partitions go on and finish; the sum then stands still.
    d = StallDetector(stall_after_s=10)
    assert d.observe(0, committed=0, end=1000)
    assert d.observe(5, committed=400, end=1000)  # the other partitions progress: not a stall
    assert d.observe(8, committed=800, end=1000)
    assert d.observe(15, committed=800, end=1000)  # they are done; 200 records wait behind the stuck head
    assert not d.observe(19, committed=800, end=1000)
    assert d.stalled
