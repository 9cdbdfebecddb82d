"""The admin API's server: no 10 Hz tick, yet a stop request ends its main loop at once."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import uvicorn

from outbox.admin.server import TICK_S, Server


async def _app(scope: Any, receive: Any, send: Any) -> None:  # never called: nothing connects
    raise AssertionError("no request expected")


def test_the_main_loop_sleeps_a_second_per_tick_and_stops_at_once_on_a_signal() -> None:
    server = Server(uvicorn.Config(_app, log_config=None))
    ticks: list[int] = []
    on_tick = server.on_tick

    async def counting(counter: int) -> bool:
        ticks.append(counter)
        return await on_tick(counter)

    server.on_tick = counting  # type: ignore[method-assign]

    async def test() -> float:
        loop = asyncio.get_running_loop()
        main = asyncio.ensure_future(server.main_loop())
        await asyncio.sleep(0.3)
        began = loop.time()
        server.handle_exit(signal.SIGTERM, None)
        await asyncio.wait_for(main, timeout=TICK_S / 2)
        return loop.time() - began

    assert asyncio.run(test()) < TICK_S / 2
    assert ticks == [0, 10]  # one tick at the start, one for the stop (each refreshes the Date header)
    assert server.should_exit
