"""A token bucket per caller: `rate` calls a second on average, at most `burst` at once.

Kept in the process's memory: several admin API replicas each allow the rate (documented).
The keys are the configured tokens' audit names, so their number is bounded by the configuration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate_per_s, float(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one token of `key`'s bucket: 0 when taken, else the seconds until one is there (nothing taken)."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
