"""Fetch a component's `/readyz`: the HTTP status and its JSON body, bounded by a timeout; the whole platform's."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from soma.ops.stack import ServiceStatus
    from soma.ops.supervisor.spec import ComponentSpec
    from soma.ops.supervisor.state import ComponentState
    from soma.settings import Settings


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


@dataclass(frozen=True)
class PlatformHealth:
    """`soma health`'s view: the stack, every component's probe, and what the supervisor says of each."""

    infra: list[ServiceStatus]
    specs: list[ComponentSpec]  # in start order; a disabled one has no probe
    probes: dict[str, Probe]
    supervised: dict[str, ComponentState]  # empty when no supervisor runs


def check_platform(config: Settings) -> PlatformHealth:
    """Check the stack and probe every enabled component's /readyz, all at once (bounded)."""
    from concurrent.futures import ThreadPoolExecutor

    from soma.ops import stack
    from soma.ops.supervisor.bringup import components
    from soma.ops.supervisor.state import Paths, read_state

    specs = components(config)
    paths = Paths.of(config)
    state = read_state(paths.state_file) if paths.supervisor().pid() is not None else None
    timeout = max(2.0, config.telemetry.health_check_timeout_s * 4 + 1)
    with ThreadPoolExecutor(max_workers=len(specs) + 1) as pool:
        stack_rows = pool.submit(stack.status, config)
        probes = {s.name: pool.submit(fetch, s.ready_url, timeout) for s in specs if not s.disabled}
        infra = stack_rows.result()
        results = {name: future.result() for name, future in probes.items()}
    supervised = {c.name: c for c in state.components} if state else {}
    return PlatformHealth(infra, specs, results, supervised)
