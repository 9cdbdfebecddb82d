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


def test_an_object_setting_is_published_as_json_text_the_mirrors_accept(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLEEP_POLICY: the ConfigUpdate value is the policy's JSON text (values are scalars), checksummed as such."""
    from types import SimpleNamespace

    from soma.contracts import events
    from soma.live_config import LiveConfig

    sent: list[dict[str, Any]] = []

    class Producer:
        def __init__(self, *_: Any) -> None:
            pass

        def send(self, topic: str, event: dict[str, Any], tenant: str) -> Any:
            sent.append(event)
            return SimpleNamespace(offset=0, event_id="e")

    monkeypatch.setattr(config_updates, "read_updates", lambda _: ([], SimpleNamespace(catalog=None)))
    monkeypatch.setattr(events, "EventProducer", Producer)
    config_updates.publish(Settings(), "SLEEP_POLICY", '{"circuit_sleep": true}', tenant="acme")
    assert isinstance(sent[0]["value"], str)
    live = LiveConfig(Settings().streams.live)
    assert live.apply(sent[0]).accepted
    assert live.get("sleep_policy", "acme").circuit_sleep is True
