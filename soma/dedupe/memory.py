"""The in-process dedupe store (unit tests): Redis's semantics, a dict with expiry times."""

from __future__ import annotations

import threading
import time
from typing import Any

from soma.dedupe import DedupeStore


class MemoryStore(DedupeStore):
    def __init__(self, scope: str, ttl_s: float) -> None:
        super().__init__(scope, ttl_s)
        self._expires: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, event_id: str) -> bool:
        with self._lock:
            return self._expires.get(event_id, 0.0) > time.monotonic()

    def claim(self, event_id: str, session: Any = None) -> bool:
        return not self.seen(event_id)

    def mark(self, event_id: str) -> None:
        with self._lock:
            self._expires[event_id] = time.monotonic() + self.ttl_s

    def prune(self) -> int:
        now = time.monotonic()
        with self._lock:
            gone = [event_id for event_id, expires in self._expires.items() if expires <= now]
            for event_id in gone:
                del self._expires[event_id]
        return len(gone)
