"""How a stream's consumer asks the broker for records: a long poll while idle, coalesced fetches under load.

With the broker's defaults (a fetch answers as soon as one byte is there), a stream under steady
load sends one fetch request per record or two: at 300 records/s the integrator spent a quarter
of its time in the socket writes of fetch requests (py-spy), and the broker as much answering
them. A waiting fetch costs nothing, so: after a fetch that brought records, the next one asks
for `BUSY_MIN_BYTES` and waits at most `BUSY_WAIT_MS` for them (a hop's latency grows by at most
that); after one that came back empty, the next one is a long poll answered by the first byte
(`IDLE_WAIT_MS`: an idle stream wakes twice a second, and a first record is fetched at once).
"""

from __future__ import annotations

from typing import Any

from aiokafka.consumer.fetcher import Fetcher

BUSY_MIN_BYTES = 64 * 1024
BUSY_WAIT_MS = 15
IDLE_WAIT_MS = 500  # also the longest a busy partition waits behind a quiet one's poll (consumer_thread)


class AdaptiveFetcher(Fetcher):  # type: ignore[misc]  # aiokafka is untyped
    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
        """aiokafka's (True when records were added), choosing the wait of the next request."""
        brought = bool(await super()._proc_fetch_request(assignment, node_id, request))
        busy = (BUSY_MIN_BYTES, BUSY_WAIT_MS)
        self._fetch_min_bytes, self._fetch_max_wait_ms = busy if brought else (1, IDLE_WAIT_MS)
        return brought


def adapt(consumer: Any) -> None:
    """Make an aiokafka consumer's fetcher adaptive once it exists (it is built in `start()`)."""
    start = consumer.start

    async def start_adaptive() -> None:
        await start()
        fetcher = consumer._fetcher
        if type(fetcher) is Fetcher:  # the running fetch routine looks the method up on every request
            fetcher.__class__ = AdaptiveFetcher
            fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms = 1, IDLE_WAIT_MS

    consumer.start = start_adaptive
