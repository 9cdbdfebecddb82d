"""The restart delay of a crashed child: exponential, capped, reset once the child stayed up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    """`base * 2**(crashes in a row - 1)`, at most `cap`; a run of `reset_after_s` clears the count."""

    base_s: float
    cap_s: float
    reset_after_s: float
    crashes: int = 0

    def on_exit(self, uptime_s: float) -> float:
        """Record an exit after `uptime_s` of running; returns how long to wait before the restart."""
        if uptime_s >= self.reset_after_s:
            self.crashes = 0
        self.crashes += 1
        return float(min(self.cap_s, self.base_s * 2.0 ** min(self.crashes - 1, 62)))
