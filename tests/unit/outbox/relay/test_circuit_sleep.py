"""Circuit-driven sleep requests: which circuit changes ask for light or awake, under which live settings,
and that a request that cannot be produced is counted, never raised. The produce function is a fake here;
tests/integration/outbox/relay/test_circuit_sleep.py runs the same path against the real Kafka."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from outbox.relay.circuit_sleep import CircuitSleep
from outbox.relay.live import LiveMirror
from outbox.relay.policy import CircuitState
from soma.live_config import check_value, checksum
from soma.settings import load_settings

OPEN, HALF, CLOSED = CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED


class Sent:
    def __init__(self, error: KafkaError | None = None, raises: Exception | None = None) -> None:
        self.records: list[Any] = []
        self.error, self.raises = error, raises

    def __call__(self, record: Any, report: Any) -> None:
        if self.raises is not None:
            raise self.raises
        self.records.append(record)
        report(self.error, None)


def _live(**by_tenant: dict[str, Any]) -> LiveMirror:
    mirror = LiveMirror(load_settings(), threading.Event())  # not started: updates applied by hand
    version = 0
    for tenant, values in by_tenant.items():
        for name, value in values.items():
            version += 1
            mirror.live.apply({"name": name, "value": value, "scope_tenant": tenant, "version": version,
                               "checksum": checksum(value)})
    return mirror


POLICY_ON = '{"circuit_sleep": true}'


def _sleep(live: LiveMirror, sent: Sent) -> tuple[CircuitSleep, Counter[tuple[str, str]]]:
    counts: Counter[tuple[str, str]] = Counter()
    return CircuitSleep(load_settings(), live, sent, lambda state, result: counts.update([(state, result)])), counts


def test_open_asks_for_light_once_and_close_for_awake_once() -> None:
    sent = Sent()
    sleep, counts = _sleep(_live(acme={"ENABLE_SLEEP": True, "SLEEP_POLICY": POLICY_ON}), sent)
    sleep.changed({}, {"acme": OPEN})
    sleep.changed({"acme": OPEN}, {"acme": HALF})  # the reset passed: a probe, no new request
    sleep.changed({"acme": HALF}, {"acme": OPEN})  # the probe failed: open again, still asleep
    sleep.changed({"acme": OPEN}, {"acme": HALF})
    sleep.changed({"acme": HALF}, {"acme": CLOSED})
    sleep.changed({"acme": CLOSED}, {"acme": CLOSED})
    assert [(r.key, r.event["to_state"], r.event["reason"], r.event["requested_by"]) for r in sent.records] == [
        (b"acme", "light", "circuit", "relay"), (b"acme", "awake", "circuit", "relay"),
    ]
    assert sent.records[0].topic == "cog.sleep_requests"
    assert dict(sent.records[0].headers)["tenant"] == b"acme"
    assert counts == Counter({("light", "sent"): 1, ("awake", "sent"): 1})
    assert sleep.asleep == set()


@pytest.mark.parametrize("settings", [
    {},  # both off (the defaults)
    {"ENABLE_SLEEP": True},  # the policy does not ask for circuit sleep
    {"SLEEP_POLICY": POLICY_ON},  # sleep is off for the tenant
])
def test_nothing_is_asked_unless_sleep_and_circuit_sleep_are_on(settings: dict[str, Any]) -> None:
    sent = Sent()
    sleep, counts = _sleep(_live(acme=settings), sent)
    sleep.changed({}, {"acme": OPEN})
    sleep.changed({"acme": OPEN}, {"acme": CLOSED})
    assert sent.records == []
    assert counts == Counter()


def test_settings_are_per_tenant_and_a_global_enable_applies_to_all() -> None:
    sent = Sent()
    live = _live(acme={"SLEEP_POLICY": POLICY_ON}, globex={"SLEEP_POLICY": POLICY_ON})
    live.live.apply({"name": "ENABLE_SLEEP", "value": True, "scope_tenant": None, "version": 1,
                     "checksum": checksum(True)})
    sleep, _ = _sleep(live, sent)
    sleep.changed({}, {"acme": OPEN, "globex": OPEN, "initech": OPEN})
    assert sorted(r.key for r in sent.records) == [b"acme", b"globex"]


def test_a_wake_follows_only_a_light_the_relay_asked_for() -> None:
    """Sleep turned on while the circuit was open: its closing asks nothing (the relay never put it to sleep)."""
    sent = Sent()
    live = _live()
    sleep, _ = _sleep(live, sent)
    sleep.changed({}, {"acme": OPEN})
    for version, (name, value) in enumerate((("ENABLE_SLEEP", True), ("SLEEP_POLICY", POLICY_ON)), start=1):
        live.live.apply({"name": name, "value": value, "scope_tenant": "acme", "version": version,
                         "checksum": checksum(value)})
    sleep.changed({"acme": OPEN}, {"acme": CLOSED})
    assert sent.records == []


@pytest.mark.parametrize("sent", [
    Sent(raises=BufferError("Local: Queue full")),
    Sent(raises=KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))),
    Sent(error=KafkaError(KafkaError._MSG_TIMED_OUT)),
])
def test_a_request_that_cannot_be_produced_is_logged_and_counted_not_raised(
    sent: Sent, caplog: pytest.LogCaptureFixture
) -> None:
    sleep, counts = _sleep(_live(acme={"ENABLE_SLEEP": True, "SLEEP_POLICY": POLICY_ON}), sent)
    sleep.changed({}, {"acme": OPEN})
    sleep.changed({"acme": OPEN}, {"acme": CLOSED})
    assert counts == Counter({("light", "failed"): 1, ("awake", "failed"): 1})
    assert "sleep request (light, circuit) for tenant 'acme' not produced" in caplog.text


def test_policy_text_is_what_the_mirror_validates() -> None:
    assert check_value("sleep_policy", POLICY_ON).circuit_sleep is True
