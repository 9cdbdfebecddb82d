"""Sleep applied live by the real integrator and worker (`faust ... worker` processes) on the real stack.

Requests are produced on cog.sleep_requests as any requester would; the integrator decides them,
writes cog.sleep and Redis `sleep:{tenant}`, and applies the state to the frames; the worker asks
for a traffic wake. One module-scoped pair of workers serves every test (each uses its own tenant).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from soma.clients import kafka_producer
from soma.contracts.ids import derive_id
from soma.settings import Settings
from tests.integration.streams.conftest import LOGS
from tests.support.procs import wait_for
from tests.support.sleep import cached, frames, request, set_live, transitions, update
from tests.support.streams import Bus, scrape, streams_running


@pytest.fixture(scope="module")
def running(topics_ensured: Settings) -> Iterator[Settings]:
    own = topics_ensured.replace(enable_cog_threads=True, enable_sleep=True, integrator_alpha=0.5,
                                 worker_responder="streams.logic.responders:EchoResponder")
    with streams_running(("integrator", "worker"), own, LOGS):
        yield own


@pytest.fixture
def bus(running: Settings) -> Bus:
    return Bus(running)


def _tenant(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:6]}"


def test_deep_sleep_learns_nothing_and_frames_learn_again_after_waking(running: Settings, bus: Bus) -> None:
    tenant = _tenant("deep")
    bus.send_many("cog.predictor_updates", [update(tenant, "plan", 1.0), update(tenant, "act", 0.2)], tenant)
    assert frames(bus, tenant, 2)[-1]["leader"] == "plan"

    asked = request(bus, tenant, "deep")
    (slept,) = transitions(bus, tenant, 1)
    assert (slept["seq"], slept["from_state"], slept["to_state"], slept["reason"], slept["request_id"]) == (
        1, "awake", "deep", "manual", asked)
    assert slept["params"]["eta"] == 0.0
    assert slept["params"]["emits_frames"] is True
    assert cached(running, tenant)["to_state"] == "deep"
    # However the updates move, nothing is learned: the leader and the weights stay, a new domain is not added.
    bus.send_many("cog.predictor_updates", [update(tenant, "act", 100.0), update(tenant, "plan", 0.0),
                                            update(tenant, "new-domain", 50.0)], tenant)
    asleep = frames(bus, tenant, 5)[2:]
    assert [f["leader"] for f in asleep] == ["plan"] * 3
    assert all(f["alpha"] == 0.0 and f["weights"] == asleep[0]["weights"] for f in asleep)
    assert set(asleep[0]["weights"]) == {"plan", "act"}
    metrics = scrape(running, "integrator")
    assert metrics.value("soma_sleep_state", tenant=tenant, state="deep") == 1
    assert metrics.value("soma_sleep_transitions_total", tenant=tenant, to="deep", reason="manual") == 1
    assert metrics.value("soma_integrator_update_to_frame_seconds_count", sleep_state="deep") >= 3

    request(bus, tenant, "awake")
    assert transitions(bus, tenant, 2)[1]["to_state"] == "awake"
    bus.send("cog.predictor_updates", update(tenant, "act", 100.0), tenant)
    awake = frames(bus, tenant, 6)[5]
    assert (awake["leader"], awake["alpha"]) == ("act", 0.5)
    assert cached(running, tenant)["to_state"] == "awake"


def test_a_user_message_wakes_a_sleeping_tenant_through_the_worker(running: Settings, bus: Bus) -> None:
    tenant = _tenant("traffic")
    request(bus, tenant, "light")
    (slept,) = transitions(bus, tenant, 1)
    sent = 0

    def woken() -> bool:  # a message each poll until the worker's mirror holds the tenant asleep
        nonlocal sent
        sent += 1
        bus.send("chat.messages", {"tenant_id": tenant, "session_id": "s1", "sequence": sent, "role": "user",
                                   "content": "wake up", "tool_calls": None}, tenant)
        try:
            transitions(bus, tenant, 2, timeout_s=3.0)
        except TimeoutError:
            return False
        return True

    wait_for(woken, 60, interval_s=0.5, what="the traffic wake")
    woke = transitions(bus, tenant, 2)[1]
    assert (woke["seq"], woke["from_state"], woke["to_state"], woke["reason"], woke["requested_by"]) == (
        2, "light", "awake", "traffic_wake", "traffic")
    asks = bus.collect("cog.sleep_requests", lambda e: len(e) >= 2, 20,
                       keep=lambda e: e.value.get("tenant_id") == tenant)
    assert asks[1].value["reason"] == "traffic_wake"
    assert asks[1].value["event_id"] == derive_id(slept["event_id"], "traffic_wake")


def test_with_sleep_off_for_a_tenant_requests_are_ignored_and_frames_unchanged(running: Settings, bus: Bus) -> None:
    tenant = _tenant("off")
    set_live(running, ("integrator",), "ENABLE_SLEEP", "false", "--tenant", tenant)
    request(bus, tenant, "deep")
    wait_for(lambda: scrape(running, "integrator").value("soma_sleep_requests_ignored_total", tenant=tenant,
                                                         why="disabled") == 1, 30, what="the request ignored")
    bus.send_many("cog.predictor_updates", [update(tenant, "plan", 1.0), update(tenant, "act", 100.0)], tenant)
    moved = frames(bus, tenant, 2)
    assert [(f["leader"], f["alpha"]) for f in moved] == [("plan", 0.5), ("act", 0.5)]
    assert cached(running, tenant) is None
    with pytest.raises(TimeoutError):
        transitions(bus, tenant, 1, timeout_s=3.0)


def test_a_schedule_window_set_live_puts_the_tenant_to_sleep_until_its_end(running: Settings, bus: Bus) -> None:
    tenant = _tenant("sched")
    bus.send_many("cog.predictor_updates", [update(tenant, "plan", 1.0), update(tenant, "act", 0.2)], tenant)
    frames(bus, tenant, 2)
    now = datetime.now(UTC)
    start, end = now.strftime("%H:%M"), (now + timedelta(minutes=3)).strftime("%H:%M")
    policy = json.dumps({"light": {"eta": 0.2}, "schedule": [{"state": "light", "start": start, "end": end}]})
    set_live(running, ("integrator",), "SLEEP_POLICY", policy, "--tenant", tenant)
    (entered,) = transitions(bus, tenant, 1)
    assert (entered["to_state"], entered["reason"], entered["requested_by"]) == ("light", "schedule", "schedule")
    assert entered["until"].strftime("%H:%M") == end
    assert entered["params"]["eta"] == 0.2
    assert entered["policy_version"] >= 1
    bus.send("cog.predictor_updates", update(tenant, "act", 1.0), tenant)
    assert frames(bus, tenant, 3)[2]["alpha"] == 0.2


def test_bad_requests_are_dead_lettered_with_their_reason_and_the_stream_goes_on(running: Settings, bus: Bus) -> None:
    tenant = _tenant("bad")
    producer = kafka_producer(running)
    producer.produce(running.topic_name("cog.sleep_requests"), key=tenant.encode(), value=b"\x00garbage",
                     headers=[("tenant", tenant.encode())])
    producer.produce(running.topic_name("cog.sleep_requests"), key=b"bad tenant", value=b"\x00",
                     headers=[("tenant", b"\xff\xfe")])
    producer.flush(10)
    request(bus, tenant, "light", until=datetime.now(UTC) - timedelta(minutes=1))
    request(bus, tenant, "awake", reason="ttl_wake")
    request(bus, tenant, "deep", reason="circuit")
    request(bus, tenant, "deep")
    (slept,) = transitions(bus, tenant, 1)
    assert (slept["to_state"], slept["seq"]) == ("deep", 1)
    dead = bus.collect("dlq", lambda d: len(d) >= 4, keep=lambda e: e.value.get("tenant_id") == tenant)
    assert {d.value["stream"] for d in dead} == {"integrator"}
    errors = [d.value["error"] for d in dead]
    assert dead[0].value["error_type"] == "decode"
    assert "is not in the future" in errors[1]
    assert "the integrator's own" in errors[2]
    assert "a circuit request asks for light or awake" in errors[3]
