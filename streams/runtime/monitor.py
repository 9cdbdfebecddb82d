"""Faust's `Monitor` sensor sampling its rates every 10 s instead of every second.

The monitor's only timer computes events/s and messages/s for Faust's own /stats page (our
metrics are Prometheus counters, streams.runtime.metrics): one wake-up a second in every stream
process for numbers nobody reads. Sampled every `SAMPLE_S`, the rates are per-second averages
over that window.
"""

from __future__ import annotations

from faust.sensors import Monitor
from mode import Service

SAMPLE_S = 10.0


class SparseMonitor(Monitor):  # type: ignore[misc]  # faust is untyped
    @Service.task  # replaces Monitor._sampler (mode finds a service's tasks by attribute name)
    async def _sampler(self) -> None:
        prev_events, prev_messages = self.events_total, self.messages_received_total
        async for _ in self.itertimer(SAMPLE_S, name="Monitor.sampler"):
            prev_events, prev_messages = self._sample(prev_events, prev_messages)
            self.events_s = round(self.events_s / SAMPLE_S)
            self.messages_s = round(self.messages_s / SAMPLE_S)
