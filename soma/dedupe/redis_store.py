"""The Redis dedupe store: one key per handled event id, `soma:dedupe:<scope>:<event_id>`, with a TTL.

The mark is set after the handler's effect (see `soma.dedupe` for what that does not cover).
"""

from __future__ import annotations

from typing import Any

import redis

from soma.dedupe import DedupeStore
from soma.errors import InfrastructureUnavailable, first_line
from soma.settings import mask_url


class RedisStore(DedupeStore):
    def __init__(self, url: str, scope: str, ttl_s: float, timeout_s: float = 10.0) -> None:
        super().__init__(scope, ttl_s)
        self._where = mask_url(url)
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    def _key(self, event_id: str) -> str:
        return f"soma:dedupe:{self.scope}:{event_id}"

    def seen(self, event_id: str) -> bool:
        try:
            return bool(self._client.exists(self._key(event_id)))
        except redis.RedisError as exc:
            raise InfrastructureUnavailable(f"redis dedupe store {self._where}: {first_line(exc)}") from exc

    def claim(self, event_id: str, session: Any = None) -> bool:
        return not self.seen(event_id)

    def mark(self, event_id: str) -> None:
        try:
            self._client.set(self._key(event_id), b"1", px=max(1, int(self.ttl_s * 1000)))
        except redis.RedisError as exc:
            raise InfrastructureUnavailable(f"redis dedupe store {self._where}: {first_line(exc)}") from exc

    def close(self) -> None:
        self._client.close()
