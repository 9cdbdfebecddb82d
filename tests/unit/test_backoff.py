"""The one backoff rule: restarts (reset after a long run), relay retries (with jitter), database retries."""

from __future__ import annotations

import random

from soma.backoff import Backoff, jittered_delay


def test_restart_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base_s=1.0, cap_s=30.0, reset_after_s=60.0)
    assert [backoff.on_exit(uptime_s=2.0) for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_restart_backoff_resets_after_the_child_stayed_up() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, reset_after_s=60.0)
    assert [backoff.on_exit(1.0) for _ in range(3)] == [0.5, 1.0, 2.0]
    assert backoff.on_exit(uptime_s=61.0) == 0.5
    assert backoff.on_exit(uptime_s=1.0) == 1.0
    assert Backoff(1.0, 30.0, 60.0, failures=10_000).on_exit(0.0) == 30.0  # no overflow


def test_backoff_doubles_with_equal_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for attempts, full in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (50, 60.0)]:
        for _ in range(50):
            delay = jittered_delay(attempts, 1.0, 60.0, rng)
            assert full / 2 <= delay <= full
    assert jittered_delay(0, 1.0, 60.0, rng) <= 1.0  # a row never attempted waits like a first failure
    assert jittered_delay(10_000, 1.0, 60.0, rng) <= 60.0  # no overflow on absurd attempt counts


def test_backoff_spreads_retries() -> None:
    rng = random.Random(1)
    delays = {round(jittered_delay(4, 1.0, 300.0, rng), 3) for _ in range(100)}
    assert len(delays) > 50
