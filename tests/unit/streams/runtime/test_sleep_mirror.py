"""The sleep mirror: a record applies only above the held seq; written-not-read transitions; ENABLE_SLEEP per tenant.

(Read from the real cog.sleep by the real streams: tests/integration/streams/test_sleep*.py.)
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.live_config import LiveConfig, checksum
from soma.settings import load_settings
from streams.runtime.metrics import StreamMetrics
from streams.runtime.sleep_mirror import SleepMirror

PARAMS = {"eta": 0.0, "temperature": 1.0, "dwell_frames": 3, "drop_threshold": 0.25, "emits_frames": True}


def mirror(**settings: Any) -> SleepMirror:
    m = SleepMirror()
    m.name, m.settings, m.catalog = "unit", load_settings(topic_prefix="unit.", **settings), load_catalog()
    m.codec, m.metrics = Codec(m.catalog, m.settings), StreamMetrics("unit")
    m.live = LiveConfig(m.settings.streams.live)
    m.init_sleep_mirror(True)
    return m


def record(seq: int, to_state: str, tenant: str = "acme") -> dict[str, Any]:
    return {"event_id": f"e{seq}", "tenant_id": tenant, "occurred_at": datetime(2026, 1, 1, tzinfo=UTC), "seq": seq,
            "from_state": "awake", "to_state": to_state, "reason": "manual", "until": None, "params": PARAMS,
            "policy_version": 0, "requested_by": "ops", "request_id": None}


def feed(m: SleepMirror, *records: dict[str, Any] | bytes) -> None:
    async def run() -> None:
        for offset, r in enumerate(records):
            await m.apply_sleep(r if isinstance(r, bytes) else m.codec.encode("cog.sleep", r), offset)

    asyncio.run(run())


def live(m: SleepMirror, name: str, value: Any, tenant: str | None = None, version: int = 1) -> None:
    decision = m.live.apply({"name": name, "value": value, "checksum": checksum(value), "version": version,
                             "scope_tenant": tenant})
    assert decision.accepted, decision.reason


def test_a_record_applies_only_when_its_seq_is_above_the_held_one() -> None:
    m = mirror(enable_sleep=True)
    seen: list[str] = []
    m.on_sleep.append(seen.append)
    feed(m, record(2, "deep"), record(1, "light"), record(2, "freeze"), record(3, "awake"))
    assert m.sleep_record("acme")["event_id"] == "e3"
    assert seen == ["acme", "acme"]  # seq 1 and the second seq 2 changed nothing
    assert m.sleep_seq("acme") == 3


def test_unusable_records_and_tombstones_never_stop_the_mirror() -> None:
    m = mirror(enable_sleep=True)
    feed(m, b"\x00garbage", record(1, "light"))
    asyncio.run(m.apply_sleep(None, 9))
    assert m.applied_sleep("acme") == "light"


def test_a_written_transition_holds_until_the_mirror_reads_it_or_a_later_one() -> None:
    m = mirror(enable_sleep=True)
    feed(m, record(1, "light"))
    m.note_written(record(2, "deep"))
    assert m.applied_sleep("acme") == "deep"  # the next decision builds on seq 2, not seq 1
    m.note_written(record(1, "freeze"))  # not above what the log holds: ignored
    assert m.sleep_current("acme").seq == 2
    feed(m, record(2, "deep"))
    assert m.sleep_written == {}
    assert m.sleep_record("acme")["seq"] == 2


def test_with_sleep_off_the_state_is_kept_but_not_applied() -> None:
    m = mirror()  # ENABLE_SLEEP off by default
    feed(m, record(1, "deep"))
    assert m.sleep_record("acme")["to_state"] == "deep"
    assert m.applied_sleep("acme") == "awake"
    live(m, "ENABLE_SLEEP", True, tenant="acme")
    assert m.applied_sleep("acme") == "deep"
    assert m.applied_sleep("other") == "awake"  # no record


def test_effective_parameters_follow_the_tenant_policy_and_the_live_settings() -> None:
    m = mirror(enable_sleep=True, integrator_alpha=0.4, segmenter_dwell_frames=2)
    live(m, "SLEEP_POLICY", '{"light": {"eta": 0.1, "dwell_frames": 6}}', tenant="acme")
    feed(m, record(1, "light"))
    eff = m.sleep_effective("acme")
    assert (eff.eta, eff.dwell_frames, eff.emits_frames) == (0.1, 6, True)
    assert m.sleep_effective("acme", "awake").eta == 0.4
    assert m.sleep_effective("acme", "freeze").emits_frames is False
    assert m.sleep_policy("other").light.eta == 0.1  # the default policy (no override for other)
