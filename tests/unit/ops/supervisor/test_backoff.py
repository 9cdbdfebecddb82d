"""The supervisor's restart backoff."""

from __future__ import annotations

from soma.ops.supervisor.backoff import Backoff


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base_s=1.0, cap_s=30.0, reset_after_s=60.0)
    assert [backoff.on_exit(uptime_s=2.0) for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_backoff_resets_after_the_child_stayed_up() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, reset_after_s=60.0)
    assert [backoff.on_exit(1.0) for _ in range(3)] == [0.5, 1.0, 2.0]
    assert backoff.on_exit(uptime_s=61.0) == 0.5
    assert backoff.on_exit(uptime_s=1.0) == 1.0
    assert Backoff(1.0, 30.0, 60.0, crashes=10_000).on_exit(0.0) == 30.0  # no overflow
