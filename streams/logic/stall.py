"""Readiness against the known silent-stall mode (faust-streaming #175, #640).

A consumer that stops fetching after a rebalance keeps running, but its committed offsets stop
moving while records wait on the broker. `StallDetector` fails readiness when the committed
position has not advanced for `stall_after_s` while there was lag all that time (and it did not
shrink). The end offsets must come from the broker: a consumer that no longer fetches also stops
learning new high watermarks, so its own view of the lag freezes instead of growing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StallDetector:
    stall_after_s: float
    _committed: int | None = None
    _since: float = 0.0
    _lag_at_since: int = 0
    stalled: bool = False

    def observe(self, now: float, committed: int, end: int) -> bool:
        """Feed the summed committed and end offsets of the assigned partitions; returns readiness."""
        lag = max(0, end - committed)
        if self._committed is None or committed != self._committed or lag == 0:
            self._committed, self._since, self._lag_at_since = committed, now, lag
            self.stalled = False
            return True
        self.stalled = now - self._since >= self.stall_after_s and lag >= self._lag_at_since
        return not self.stalled
