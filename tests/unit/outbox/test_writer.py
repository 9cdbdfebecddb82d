"""The writer's checks and row building, without a database: what would be inserted, or why not."""

from __future__ import annotations

import pytest

from outbox.errors import EmitError
from outbox.writer import Emission, OutboxWriter
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.settings import load_settings
from tests.support.samples import sample


@pytest.fixture(scope="module")
def writer() -> OutboxWriter:
    settings = load_settings(topic_prefix="unit.")
    catalog = load_catalog()
    return OutboxWriter(catalog, Codec(catalog, settings), settings)


def test_row_values_are_exactly_what_the_relay_publishes(writer: OutboxWriter) -> None:
    event = sample("chat.messages", tenant="acme")
    values = writer.prepare(Emission("chat.messages", event, "acme", "order-1", headers={"x-origin": "test"}))
    assert values["tenant_id"] == "acme"
    assert values["dedupe_key"] == "order-1"
    assert values["topic"] == "chat.messages"  # logical: the relay adds the prefix of its own settings
    assert values["key"] == f"acme:{event['session_id']}"
    headers = values["headers"]
    assert headers["tenant"] == "acme"
    assert headers["dedupe-key"] == "order-1"
    assert headers["event-type"] == values["event_type"] == "soma.events.ChatMessage"
    assert headers["traceparent"].startswith("00-")
    assert headers["x-origin"] == "test"
    decoded = writer.codec.decode("chat.messages", values["payload"])
    assert decoded["content"] == event["content"]
    assert decoded["event_id"] == values["event_id"]


def test_a_caller_traceparent_is_kept(writer: OutboxWriter) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    values = writer.prepare(Emission("chat.messages", sample("chat.messages", tenant="acme"), "acme", "d",
                                     headers={"traceparent": parent}))
    assert values["headers"]["traceparent"] == parent


@pytest.mark.parametrize(
    ("emission", "expected"),
    [
        (Emission("chat.messages", {"session_id": "s", "sequence": "x", "role": "user", "content": "c"},
                  "acme", "d"), "field 'sequence'"),
        (Emission("chat.messages", {"role": "user"}, "acme", "d"), "field '"),
        (Emission("no.such.topic", {}, "acme", "d"), "no.such.topic"),
        (Emission("chat.messages", {}, "", "d"), "tenant"),
        (Emission("chat.messages", {}, "acme", ""), "dedupe_key"),
        (Emission("chat.messages", {}, "acme", "k" * 401), "dedupe_key"),
        (Emission("chat.messages", {}, "t" * 201, "d"), "tenant"),
        (Emission("chat.messages", {}, "acme", "d", headers={"tenant": "other"}), "header 'tenant'"),
        (Emission("chat.messages", {}, "acme", "d", headers={"Dedupe-Key": "x"}), "header 'Dedupe-Key'"),
        (Emission("chat.messages", {}, "acme", "d", headers={"x": 1}), "header 'x'"),  # type: ignore[dict-item]
        (Emission("chat.messages", {**sample("chat.messages"), "tenant_id": "globex"}, "acme", "d"), "tenant_id"),
    ],
)
def test_bad_emissions_fail_in_one_line_naming_the_problem(
    writer: OutboxWriter, emission: Emission, expected: str
) -> None:
    with pytest.raises(EmitError) as caught:
        writer.prepare(emission)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_length_limits_match_the_columns() -> None:
    from outbox.models import OutboxEvent
    from outbox.writer import DEDUPE_KEY_MAX, TENANT_MAX

    assert OutboxEvent.__table__.c.tenant_id.type.length == TENANT_MAX  # type: ignore[attr-defined]
    assert OutboxEvent.__table__.c.dedupe_key.type.length == DEDUPE_KEY_MAX  # type: ignore[attr-defined]
