"""`soma config set|show` without the broker: what is refused before publishing, and the values in effect."""

from __future__ import annotations

from typing import Any

import pytest

from soma import config_updates
from soma.errors import EventValidationError
from soma.live_config import checksum
from soma.settings import Settings


def _update(name: str, value: Any, version: int, tenant: str | None = None, check: str | None = None) -> dict[str, Any]:
    return {"name": name, "value": value, "scope_tenant": tenant, "version": version,
            "checksum": check if check is not None else checksum(value), "author": "tests"}


@pytest.mark.parametrize(("name", "value", "message"), [
    ("KAFKA_BOOTSTRAP", "x", "'KAFKA_BOOTSTRAP' is not a live setting; live: "),
    ("INTEGRATOR_TEMPERATURE", "warm", "INTEGRATOR_TEMPERATURE: expected a number, got .warm."),
])
def test_publish_refuses_before_reading_the_topic(name: str, value: str, message: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def no_broker(_: Settings) -> None:
        raise AssertionError("read the topic")

    monkeypatch.setattr(config_updates, "read_updates", no_broker)
    with pytest.raises(EventValidationError, match=message):
        config_updates.publish(Settings(), name, value)


def test_effective_values_name_their_source_and_the_refused_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    updates = [
        _update("INTEGRATOR_TEMPERATURE", 0.5, 1),
        _update("INTEGRATOR_TEMPERATURE", 0.25, 1, tenant="acme"),
        _update("INTEGRATOR_ALPHA", 0.9, 1, check="0" * 64),
    ]
    monkeypatch.setattr(config_updates, "read_updates", lambda _: (updates, None))
    everyone = config_updates.effective(Settings())
    acme = config_updates.effective(Settings(), "acme")
    row = {r["name"]: r for r in everyone.settings}["INTEGRATOR_TEMPERATURE"]
    assert (row["value"], row["source"]) == (0.5, "config_updates v1")
    row = {r["name"]: r for r in acme.settings}["INTEGRATOR_TEMPERATURE"]
    assert (row["value"], row["source"]) == (0.25, "tenant acme v1")
    assert {r["name"]: r for r in acme.settings}["INTEGRATOR_ALPHA"]["source"] == "settings"
    assert [r["name"] for r in everyone.rejected] == ["INTEGRATOR_ALPHA"]


def test_an_object_setting_is_published_as_its_canonical_json_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from soma.contracts import events
    from soma.live_config import LiveConfig

    sent: list[dict[str, Any]] = []

    class Delivered:
        offset, event_id = 7, "e-1"

    class Producer:
        def __init__(self, *_: Any) -> None:
            pass

        def send(self, topic: str, event: dict[str, Any], tenant: str) -> Delivered:
            sent.append(event)
            return Delivered()

    class NoCodec:
        catalog = None

    monkeypatch.setattr(config_updates, "read_updates", lambda _: ([], NoCodec()))
    monkeypatch.setattr(events, "EventProducer", Producer)
    config_updates.publish(Settings(), "SLEEP_POLICY", '{ "light": {"eta": 0.2}, "wake_on_traffic": false }',
                           tenant="acme", author="tests")
    event = sent[0]
    assert event["value"] == '{"light":{"eta":0.2},"wake_on_traffic":false}'  # what was given, canonical
    assert event["checksum"] == checksum(event["value"])
    live = LiveConfig(Settings().streams.live)
    assert live.apply(event | {"scope_tenant": "acme"}).accepted  # what every process accepts
    assert live.get("sleep_policy", "acme").light.eta == 0.2

