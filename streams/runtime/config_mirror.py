"""The live config mirror: every stream process reads `config_updates` from the beginning into its
`LiveConfig` (a group-less reader, no commits) before it processes anything, then follows it.

A rejected update is logged, counted and audited on `outbox.audit`; hooks in `on_config` run
after every accepted one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from soma.contracts.ids import derive_id
from soma.errors import SomaError
from soma.live_config import field_for
from streams.logic.output import Output
from streams.runtime.core import log
from streams.runtime.emit import Emitter
from streams.runtime.log_mirror import mirror_topic


class ConfigMirror(Emitter):
    on_config: list[Callable[[], None]]

    def param(self, field: str, tenant: str | None = None) -> Any:
        return self.live.get(field, tenant)

    async def wait_for_config(self) -> None:
        if not self.config_loaded.is_set():
            try:
                await asyncio.wait_for(self.config_loaded.wait(), timeout=self.settings.kafka.timeout_s * 3)
            except TimeoutError:
                log.warning("%s: config_updates not loaded in time; starting with what is known", self.name)

    async def mirror_config(self) -> None:
        """The app task that keeps the mirror: `config_loaded` is set once the start-up end offsets are read."""
        await mirror_topic(self.settings, f"{self.name}-config", self.settings.topic_name("config_updates"),
                           self.catalog.topic("config_updates").partitions, self.config_loaded, self.apply_config)

    async def apply_config(self, raw: bytes | None, offset: int) -> None:
        if not raw:
            return  # a tombstone
        try:
            update = self.codec.decode("config_updates", raw)
            decision = self.live.apply(update)
        except Exception as exc:  # one bad update never stops the mirror (and with it the stream)
            log.warning("%s: unusable config update at offset %d: %s: %s", self.name, offset, type(exc).__name__,
                        exc)
            self.metrics.config_rejected.labels("?").inc()
            return
        if decision.accepted:
            log.info("%s: config %s (tenant %s) = %r, version %s", self.name, decision.name,
                     decision.scope or "*", update.get("value"), update.get("version"))
            self.metrics.config_applied.inc()
            for hook in self.on_config:
                hook()
            return
        log.warning("%s: rejected config update %s (tenant %s, version %s): %s", self.name, decision.name,
                    decision.scope or "*", update.get("version"), decision.reason)
        # bounded: a name that is not a live setting is counted as "other"
        self.metrics.config_rejected.labels(decision.name if field_for(decision.name) else "other").inc()
        details = {"name": decision.name, "version": update.get("version"), "reason": decision.reason,
                   "update_event_id": update.get("event_id"), "stream": self.name}
        tenant = decision.scope or "_global"
        try:
            await self.emit([Output("outbox.audit", {
                "event_id": derive_id(str(update.get("event_id")), f"config-rejected:{self.name}"),
                "actor": f"streams.{self.name}", "action": "config.rejected", "target_tenant": tenant,
                "details_json": json.dumps(details, sort_keys=True, default=str), "outcome": "rejected",
            }, tenant)])
        except SomaError as exc:
            log.warning("%s: could not audit the rejection: %s", self.name, exc)

