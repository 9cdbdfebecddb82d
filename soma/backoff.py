"""Exponential backoff: the one delay rule of restarts, relay retries and database retries."""

from __future__ import annotations

import random
from dataclasses import dataclass


def exponential_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """`base * 2**(attempt - 1)` for the `attempt`-th try in a row (>= 1), at most `cap`."""
    exponent = min(max(attempt, 1) - 1, 62)
    return float(min(cap_s, base_s * 2.0**exponent))


def jittered_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """`exponential_delay` with "equal jitter": a uniform pick in [delay/2, delay], so retries of many
    callers spread out but never come back all at once."""
    delay = exponential_delay(attempt, base_s, cap_s)
    return (rng or random).uniform(delay / 2, delay)


@dataclass
class Backoff:
    """Consecutive failures and the delay before the next try; a success (or a long enough run,
    for a restarted process) clears the count."""

    base_s: float
    cap_s: float
    reset_after_s: float = float("inf")
    failures: int = 0

    def failed(self) -> float:
        """Record one more failure in a row; returns how long to wait before the next try."""
        self.failures += 1
        return exponential_delay(self.failures, self.base_s, self.cap_s)

    def succeeded(self) -> None:
        self.failures = 0

    def on_exit(self, uptime_s: float) -> float:
        """A supervised process exited after `uptime_s` of running: the wait before its restart."""
        if uptime_s >= self.reset_after_s:
            self.succeeded()
        return self.failed()
