"""Record size limits: counted like a producer counts them, refused with one line naming the topic."""

from __future__ import annotations

import dataclasses

import pytest

from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import prepare
from soma.contracts.limits import RecordTooLarge, check_record_size, record_size, size_limit
from soma.settings import load_settings


def _chat(text: str) -> dict[str, object]:
    return {"session_id": "s-1", "sequence": 1, "role": "user", "content": text}


def test_record_size_counts_value_key_and_headers() -> None:
    assert record_size(b"key", b"value", [("tenant", b"acme"), ("empty", None)]) == 3 + 5 + 6 + 4 + 5
    assert record_size(None, None) == 0


def test_topic_limit_lowers_the_platform_limit_never_raises_it() -> None:
    settings = load_settings(kafka_max_message_bytes=50_000)
    spec = load_catalog().topic("chat.messages")
    assert size_limit(spec, settings) == 50_000
    assert size_limit(dataclasses.replace(spec, max_message_bytes=10_000), settings) == 10_000
    assert size_limit(dataclasses.replace(spec, max_message_bytes=90_000), settings) == 50_000
    assert size_limit(None, settings) == 50_000


def test_oversized_event_is_refused_in_one_line_naming_topic_size_and_limit() -> None:
    settings = load_settings(kafka_max_message_bytes=20_000)
    catalog = load_catalog()
    codec = Codec(catalog, settings)
    prepare(catalog, codec, settings, "chat.messages", _chat("x" * 10_000), tenant="acme")
    with pytest.raises(RecordTooLarge) as caught:
        prepare(catalog, codec, settings, "chat.messages", _chat("x" * 30_000), tenant="acme")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("chat.messages: record of ")
    assert "exceeds the topic's limit of 20000 bytes" in message


def test_check_record_size_passes_at_the_limit() -> None:
    check_record_size("t", 100, 100)
    with pytest.raises(RecordTooLarge):
        check_record_size("t", 101, 100)
