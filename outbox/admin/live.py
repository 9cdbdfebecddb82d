"""The live settings as the admin API sees them: read from config_updates, kept for a short while.

The admin API does not follow config_updates the way the streams do (they keep a mirror task);
it reads the compacted topic to its end (`soma.config_updates.read_updates`, bounded by the Kafka
timeout) when it needs a live value and its copy is older than `SOMA_ADMIN_LIVE_CACHE_S`, and
applies the updates with the same rules as every other process (`soma.live_config.LiveConfig`).
So a change takes at most that long to reach the sleep endpoints; one the API publishes itself
(PUT sleep_policy) is seen at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from soma.live_config import LiveConfig
from soma.settings import Settings

Reader = Callable[[Settings], tuple[list[dict[str, Any]], Any]]


@dataclass(frozen=True)
class LiveValue:
    """A live setting's value for a tenant, the config_updates version it came with, and its scope."""

    value: Any
    version: int  # 0: the configured default
    scope: str  # tenant, global or default


def _read(settings: Settings) -> tuple[list[dict[str, Any]], Any]:
    from soma.config_updates import read_updates

    return read_updates(settings)


class LiveView:
    """The accepted live overrides, refreshed from config_updates when older than `ttl_s`."""

    def __init__(self, settings: Settings, ttl_s: float, *, read: Reader = _read,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.ttl_s = settings, ttl_s
        self._read, self._clock = read, clock
        self._lock = threading.Lock()
        self._live: LiveConfig | None = None
        self._read_at = 0.0

    def _current(self) -> LiveConfig:
        with self._lock:  # one read at a time; the others use its result
            if self._live is None or self._clock() - self._read_at >= self.ttl_s:
                updates, _ = self._read(self.settings)
                live = LiveConfig(self.settings.streams.live)
                for update in updates:
                    live.apply(update)
                self._live, self._read_at = live, self._clock()
            return self._live

    def invalidate(self) -> None:
        """Read the topic again at the next look (after a change this process published)."""
        with self._lock:
            self._live = None

    def get(self, field: str, tenant: str) -> LiveValue:
        """`field` for `tenant`: its own override, else the global one, else the configured default."""
        live = self._current()
        overrides = live.overrides()
        for scope, key in (("tenant", tenant), ("global", None)):
            held = overrides.get((key, field))
            if held is not None and held[1] is not None:  # a null update resets to the next level
                return LiveValue(held[1], held[0], scope)
        return LiveValue(live.get(field), 0, "default")
