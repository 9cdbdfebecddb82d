"""Fetch a component's `/readyz`: the HTTP status and its JSON body, bounded by a timeout."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Probe:
    ready: bool
    status: int | None  # None: no HTTP answer at all
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def failures(self) -> list[str]:
        """One `check: detail` per failing check of the body, or why there was no answer."""
        if self.status is None:
            return [self.error]
        checks = self.body.get("checks")
        if isinstance(checks, dict):
            failed = [f"{name}: {c.get('detail', 'failed')}" for name, c in checks.items()
                      if isinstance(c, dict) and not c.get("ok")]
            if failed:
                return failed
        return [] if self.ready else [f"HTTP {self.status}"]


def fetch(url: str, timeout_s: float) -> Probe:
    """GET `url`; ready when it answers 200. Never raises."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - our own loopback URLs
            status, raw = int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        status, raw = int(exc.code), exc.read()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Probe(False, None, error=f"no answer from {url}: {reason}")
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    return Probe(status == 200, status, body if isinstance(body, dict) else {})
