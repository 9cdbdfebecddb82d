"""The leader-change policy check against OPA (optional; fail-open or fail-closed)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from soma.clients import http_client

log = logging.getLogger("streams.opa")


@dataclass(frozen=True)
class PolicyAnswer:
    allowed: bool
    decided: bool  # False: OPA did not answer and the fail mode decided


class LeaderPolicy:
    def __init__(self, url: str | None, path: str) -> None:
        self.url = url.rstrip("/") if url else None
        self.path = path.strip("/")
        self._client = http_client() if self.url else None

    async def allow(self, query: dict[str, Any], *, fail_mode: str, timeout_s: float) -> PolicyAnswer:
        if self._client is None or self.url is None:
            return PolicyAnswer(True, True)
        try:
            response = await self._client.post(
                f"{self.url}/v1/data/{self.path}", json={"input": query}, timeout=timeout_s
            )
            response.raise_for_status()
            result = response.json().get("result")
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("OPA unavailable (%s); failing %s", exc, fail_mode)
            return PolicyAnswer(fail_mode == "open", False)
        return PolicyAnswer(result is True, True)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
