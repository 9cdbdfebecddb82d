"""The sleep mirror: the streams that apply sleep (integrator, segmenter, worker) read `cog.sleep` from
the beginning into a per-tenant state (a group-less reader, like the live config mirror), then follow it.

A record is taken only when its seq is above the one held, so a duplicate (a rebalance overlap
writing the same transition twice) or an older record changes nothing, and a restarted stream
resumes with the state the log says. The integrator also notes the transitions it has written
but not read back yet (`note_written`), so its next decision builds on them and no seq is used
twice. With `ENABLE_SLEEP` off for a tenant the state is kept but not applied: `applied` says awake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from soma.sleep.policy import Effective, SleepPolicy, effective
from streams.logic.sleep import Current
from streams.runtime.config_mirror import ConfigMirror
from streams.runtime.core import log
from streams.runtime.log_mirror import mirror_topic


class SleepMirror(ConfigMirror):
    sleep_held: dict[str, dict[str, Any]]  # tenant -> its latest SleepStateChanged read from cog.sleep
    sleep_written: dict[str, dict[str, Any]]  # tenant -> one this process wrote and has not read back yet
    on_sleep: list[Callable[[str], None]]
    mirrors_sleep = False  # set by init_sleep_mirror (a stream that applies no sleep keeps no mirror)

    def init_sleep_mirror(self, enabled: bool) -> None:
        self.sleep_held, self.sleep_written, self.on_sleep = {}, {}, []
        self.sleep_loaded = asyncio.Event()
        self.mirrors_sleep = enabled

    async def mirror_sleep(self) -> None:
        """The app task that keeps the mirror: `sleep_loaded` is set once the start-up end offsets are read."""
        await mirror_topic(self.settings, f"{self.name}-sleep", self.settings.topic_name("cog.sleep"),
                           self.catalog.topic("cog.sleep").partitions, self.sleep_loaded, self.apply_sleep)

    async def wait_for_sleep(self) -> None:
        if self.mirrors_sleep and not self.sleep_loaded.is_set():
            try:
                await asyncio.wait_for(self.sleep_loaded.wait(), timeout=self.settings.kafka.timeout_s * 3)
            except TimeoutError:
                log.warning("%s: cog.sleep not loaded in time; starting with what is known", self.name)

    async def apply_sleep(self, raw: bytes | None, offset: int) -> None:
        if not raw:
            return  # a tombstone (compaction may leave none; nobody writes them)
        try:
            record = self.codec.decode("cog.sleep", raw)
            tenant, seq = str(record["tenant_id"]), int(record["seq"])
        except Exception as exc:  # one bad record never stops the mirror (and with it the stream)
            log.warning("%s: unusable cog.sleep record at offset %d: %s: %s", self.name, offset,
                        type(exc).__name__, exc)
            return
        held = self.sleep_held.get(tenant)
        if held is not None and seq <= int(held["seq"]):
            return
        self.sleep_held[tenant] = record
        written = self.sleep_written.get(tenant)
        if written is not None and int(written["seq"]) <= seq:
            del self.sleep_written[tenant]
        for hook in self.on_sleep:
            hook(tenant)

    def note_written(self, record: dict[str, Any]) -> None:
        """A transition this process wrote: its state until the mirror reads the record (or a later one)."""
        tenant = str(record["tenant_id"])
        if int(record["seq"]) > self.sleep_seq(tenant):
            self.sleep_written[tenant] = record

    def sleep_record(self, tenant: str) -> dict[str, Any] | None:
        """The tenant's latest transition, read or written (whatever ENABLE_SLEEP says)."""
        held, written = self.sleep_held.get(tenant), self.sleep_written.get(tenant)
        if written is not None and (held is None or int(written["seq"]) > int(held["seq"])):
            return written
        return held

    def sleep_current(self, tenant: str) -> Current | None:
        return Current.of(self.sleep_record(tenant))

    def sleep_seq(self, tenant: str) -> int:
        held = self.sleep_held.get(tenant)
        return int(held["seq"]) if held is not None else 0

    def sleep_enabled(self, tenant: str) -> bool:
        return bool(self.param("enable_sleep", tenant))

    def sleep_policy(self, tenant: str | None) -> SleepPolicy:
        policy = self.param("sleep_policy", tenant)
        return policy if isinstance(policy, SleepPolicy) else SleepPolicy.model_validate(policy)

    def applied_sleep(self, tenant: str) -> str:
        """The state the streams apply: awake while ENABLE_SLEEP is off for the tenant."""
        record = self.sleep_record(tenant)
        if record is None or not self.sleep_enabled(tenant):
            return "awake"
        return str(record["to_state"])

    def live_effective(self, tenant: str) -> Effective:
        """The awake values: the tenant's live settings."""
        p = self.param
        return Effective(eta=float(p("integrator_alpha", tenant)),
                         temperature=float(p("integrator_temperature", tenant)),
                         dwell_frames=int(p("segmenter_dwell_frames", tenant)),
                         drop_threshold=float(p("segmenter_drop_threshold", tenant)), emits_frames=True)

    def sleep_effective(self, tenant: str, state: str | None = None) -> Effective:
        """The parameters of the tenant's applied state (or of `state`) under its policy."""
        return effective(self.sleep_policy(tenant), state or self.applied_sleep(tenant), self.live_effective(tenant))
