"""Table recovery that hands the source partitions back to the streams without losing a record.

faust-streaming (0.15.3) ends a table recovery in `Recovery.on_recovery_completed` (and, for an
app without tables, `Recovery._resume_streams`) in this order: resume the source partitions in
the consumer, seek them to their committed offsets (awaited: a round trip to the broker), then
`app.flow_control.resume()` (which empties every stream queue: `clear_on_resume`), then
`consumer.resume_flow()`. But the fetcher already runs with the flow on (recovery turned it on
to read the changelog), so while the seek is awaited it drains the freshly resumed source
partitions: it puts their records into the stream queues and moves the consumer's read offset
past them (`Consumer._read_offset`). The queues are then emptied, the seek makes the broker
send the same records again, and `Consumer._drain_messages` drops every one below the read
offset ("DROPPED MESSAGE ROFF", a DEVLOG line). Those records are never processed:

- with a committed offset, nothing above it is committed again (`Consumer._new_offset` waits for
  the gap at the head), so the partition's commits stop while the rest flows; the stall check
  sees committed offsets stand still with lag (the "stall after a restart");
- without one (a new group, or a worker killed before its first commit), the first contiguous
  run of acknowledged offsets is committed past the dropped records: they are lost, silently.

It needs records waiting in the source partitions when recovery ends (a restart with a backlog)
and a drain slow enough to straddle the seek (a loaded machine). `StreamRecovery` stops the flow
first, so no record is delivered between the resume of the partitions and the seek, and lets
Faust's own sequence do the rest (seek, empty the queues, resume the flow).
"""

from __future__ import annotations

import asyncio

from faust.tables import TableManager
from faust.tables.recovery import Recovery

from streams.runtime.core import log


class StreamRecovery(Recovery):
    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        await self._stop_delivery()
        await super().on_recovery_completed(generation_id)

    async def _resume_streams(self, generation_id: int = 0) -> None:
        await self._stop_delivery()
        await super()._resume_streams(generation_id)

    async def _stop_delivery(self) -> None:
        """Stop the fetcher's drain loop from delivering records until Faust resumes the flow.

        Called while the source partitions are still paused, so the loop holds none of their records.
        With the flow off, `Consumer.getmany` yields nothing more (it checks the flow before every
        record; records it fetched meanwhile are not yielded, it seeks back to the committed offsets
        instead) and the next call waits in `_wait_next_records` for `resume_flow`, which Faust calls
        only after the seek and the emptying of the queues. One turn of the loop lets a delivery in
        progress (a changelog record) see the flow stopped.
        """
        self.app.consumer.stop_flow()
        await asyncio.sleep(0)
        log.debug("recovery: flow stopped before the source partitions are resumed and sought")


class StreamTableManager(TableManager):
    """Faust's table manager with `StreamRecovery` (the app's `TableManager` setting)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = StreamRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
