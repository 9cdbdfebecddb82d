"""The demo's bookkeeping: each hop recorded as it is seen, and every wait bounded by the hop timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.demo.hops import MISSED, SKIPPED, Hop
from bench.demo.observe import Observer, Seen
from soma.settings import Settings


@dataclass
class Chain:
    """Hops that depend on each other: once one is missed, the rest are skipped, not waited for."""

    broken: bool = False


class Recorder:
    """Records hops; `expect` waits for a record, `poll` for a store; a broken chain skips the rest."""

    settings: Settings
    hop_timeout_s: float
    report: Callable[[Hop], None]
    hops: list[Hop]
    observer: Observer

    def add(self, hop: Hop) -> Hop:
        self.hops.append(hop)
        self.report(hop)
        return hop

    def expect(self, chain: Chain, step: str, hop: str, topic: str, tenant: str,
               predicate: Callable[[Seen], bool], describe: Callable[[Seen], str], since: float,
               timeout_s: float | None = None) -> Seen | None:
        """Wait for a record of `topic` and `tenant` matching `predicate`; record the hop either way."""
        if chain.broken:
            self.add(Hop(step, hop, topic, tenant, status=SKIPPED, note="after a missed hop"))
            return None
        seen = self.observer.wait(lambda s: s.topic == topic and s.tenant == tenant and predicate(s),
                                  self.hop_timeout_s if timeout_s is None else timeout_s)
        if seen is None:
            chain.broken = True
            self.add(Hop(step, hop, topic, tenant, status=MISSED,
                         note=f"not seen within {self.hop_timeout_s if timeout_s is None else timeout_s:.0f}s"))
            return None
        self.add(Hop(step, hop, topic, tenant, f"{describe(seen)} {seen.position}", seen.at - since))
        return seen

    def poll(self, chain: Chain, step: str, hop: str, where: str, tenant: str,
             probe: Callable[[], tuple[str, float] | None], since: float) -> bool:
        """Poll `probe` (-> (fields, time it happened)) until it answers or the hop times out."""
        if chain.broken:
            self.add(Hop(step, hop, where, tenant, status=SKIPPED, note="after a missed hop"))
            return False
        deadline = time.monotonic() + self.hop_timeout_s
        while True:
            answer = probe()
            if answer is not None:
                self.add(Hop(step, hop, where, tenant, answer[0], answer[1] - since))
                return True
            if time.monotonic() > deadline:
                chain.broken = True
                self.add(Hop(step, hop, where, tenant, status=MISSED,
                             note=f"not seen within {self.hop_timeout_s:.0f}s"))
                return False
            time.sleep(0.1)

    def config(self, step: str, chain: Chain, name: str, value: str, tenant: str) -> float:
        """Publish a live setting change for `tenant` and wait for it on config_updates."""
        from soma.config_updates import publish

        started = time.time()
        event = publish(self.settings, name, value, tenant=tenant, author="soma-demo")
        self.expect(chain, step, f"config update {name}={value} published", "config_updates", tenant,
                    lambda s: s.value["event_id"] == event["event_id"],
                    lambda s: f"v{s.value['version']} scope={tenant}", started)
        return started

