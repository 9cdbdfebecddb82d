"""The one agent loop of every stream: take events in batches, decode them, run the stream's work to
its end, and only then let Faust acknowledge them.

Batches come from `take_batches` (streams.runtime.take: Faust's `take_events` without its timer
while idle). The events handed out (one, or a batch) are acknowledged when the agent
leaves them, even by an exception or a cancellation, and its shutdown commits what was
acknowledged: a SIGTERM or a failure mid-batch would commit offsets past work never done.
So `complete` makes a cancellation (shutdown) wait for the work to finish first, and a failure
exit the process at once, before anything is committed: the supervisor restarts it and the
events are delivered again (outputs and state are idempotent by event id).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from streams.runtime.core import log
from streams.runtime.records import Incoming, Records
from streams.runtime.take import take_batches

ProcessBatch = Callable[[list[Incoming]], Awaitable[None]]


class Batches(Records):
    async def run_batches(
        self, events: Any, process: ProcessBatch, size: int, within: float,
    ) -> None:
        """The body of every agent: at most `size` events per batch, waiting at most `within` seconds to fill
        one; `process` gets the decoded records (undecodable ones are dead-lettered first)."""
        await self.wait_for_config()
        await self.wait_for_sleep()
        async for taken in self.take(events, size, within):
            await self.complete(self._decoded(taken, process))

    def take(self, events: Any, size: int, within: float) -> AsyncIterator[list[Any]]:
        """The batches of the agent's stream: waiting without a timer while nothing is buffered."""
        return take_batches(events, size, within)

    async def _decoded(self, taken: Sequence[Any], process: ProcessBatch) -> None:
        records = [record for record in [await self.decode(event) for event in taken] if record is not None]
        await process(records)

    async def complete(self, work: Awaitable[None]) -> None:
        """Run the work on the events in hand to its end, whatever happens to the agent meanwhile."""
        task = asyncio.ensure_future(work)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                log.info("%s: stopping: finishing the events in hand first", self.name)
                try:
                    await asyncio.wait_for(asyncio.shield(task), timeout=self.settings.kafka.timeout_s * 3)
                except BaseException as exc:
                    self._exit_uncommitted(f"events in hand unfinished at shutdown ({type(exc).__name__})")
            raise
        except Exception as exc:
            log.critical("%s: processing failed: %s", self.name, exc, exc_info=True)
            self._exit_uncommitted(f"{type(exc).__name__}: {exc}")

    def _exit_uncommitted(self, why: str) -> None:
        log.critical("%s: exiting without committing (%s); the events in hand will be delivered again",
                     self.name, why)
        logging.shutdown()
        os._exit(70)  # not SystemExit: Faust's shutdown would commit the acknowledged offsets
