"""The streams apply the sleep their mirror holds: the segmenter's dwell and drop threshold, the worker's
traffic wake (each through its module's `stream`; real processes: tests/integration/streams/test_sleep.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from soma.live_config import checksum
from streams.runtime.records import Incoming

DEEP = '{"deep": {"eta": 0, "dwell_frames": 9, "drop_threshold": 0.6}}'
PARAMS = {"eta": 0.0, "temperature": 1.0, "dwell_frames": 3, "drop_threshold": 0.25, "emits_frames": True}


def _sleep(stream: Any, tenant: str, to_state: str, *, enable: bool = True, policy: str | None = None) -> None:
    version = 1000 + len(stream.live.overrides())
    if enable:
        assert stream.live.apply({"name": "ENABLE_SLEEP", "value": True, "checksum": checksum(True),
                                  "version": version, "scope_tenant": tenant}).accepted
    if policy is not None:
        assert stream.live.apply({"name": "SLEEP_POLICY", "value": policy, "checksum": checksum(policy),
                                  "version": version + 1, "scope_tenant": tenant}).accepted
    record = {"event_id": f"{tenant}-1", "tenant_id": tenant, "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
              "seq": 1, "from_state": "awake", "to_state": to_state, "reason": "manual", "until": None,
              "params": PARAMS, "policy_version": 0, "requested_by": "ops", "request_id": None}
    asyncio.run(stream.apply_sleep(stream.codec.encode("cog.sleep", record), 0))


def test_the_segmenter_takes_dwell_and_drop_from_the_tenant_sleep_state() -> None:
    import streams.segmenter as segmenter

    live = segmenter.params_for("seg-awake")
    _sleep(segmenter.stream, "seg-deep", "deep", policy=DEEP)
    deep = segmenter.params_for("seg-deep")
    assert (deep.dwell, deep.drop) == (9, 0.6)
    _sleep(segmenter.stream, "seg-off", "deep", enable=False,
           policy=DEEP)
    off = segmenter.params_for("seg-off")
    assert (off.dwell, off.drop) == (live.dwell, live.drop)  # ENABLE_SLEEP off: as today


def test_the_worker_asks_once_per_transition_to_wake_a_sleeping_tenant_on_a_user_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import streams.worker as worker

    def message(tenant: str, role: str = "user", topic: str = "chat.messages") -> Incoming:
        return Incoming(topic, {"event_id": "m", "tenant_id": tenant, "session_id": "s", "role": role}, 0, 0,
                        None, b"", {})

    _sleep(worker.stream, "wk-light", "light")
    (asked,) = worker.wake_request(message("wk-light"))
    assert (asked.topic, asked.event["reason"], asked.event["to_state"]) == ("cog.sleep_requests", "traffic_wake",
                                                                             "awake")
    assert worker.wake_request(message("wk-light")) == []  # the same transition: asked already
    assert worker.wake_request(message("wk-other")) == []  # no sleep record: awake
    _sleep(worker.stream, "wk-assistant", "light")
    assert worker.wake_request(message("wk-assistant", role="assistant")) == []
    _sleep(worker.stream, "wk-off", "light", enable=False)
    assert worker.wake_request(message("wk-off")) == []
    _sleep(worker.stream, "wk-nowake", "deep", policy='{"wake_on_traffic": false}')
    assert worker.wake_request(message("wk-nowake")) == []
