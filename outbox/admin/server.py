"""uvicorn's server without its 10 Hz tick.

`uvicorn.Server.main_loop` sleeps 0.1 s in a loop to notice a stop request and refresh the Date
header once a second: ten wake-ups a second in an idle process. Here the loop wakes once a second
(the header's resolution) or at once when a signal asks the server to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn

TICK_S = 1.0
TICKS_PER_REFRESH = 10  # uvicorn's on_tick refreshes the Date header when its counter is a multiple of 10


class Server(uvicorn.Server):
    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            counter = (counter + TICKS_PER_REFRESH) % 864000
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._wake is not None:  # a signal handler: thread-safe wake-up
            self._loop.call_soon_threadsafe(self._wake.set)
