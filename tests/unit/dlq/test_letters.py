"""One dead letter decoded from its `dlq` bytes, its views, and the headers of its redrive."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import prepare
from soma.contracts.samples import sample
from soma.dlq.letters import UNDECODABLE, DeadLetter, decode_original, detail, from_record, summary, text_or_base64
from soma.dlq.redrive import redrive_headers
from soma.dlq.select import LetterId
from soma.settings import load_settings

CATALOG = load_catalog()
SETTINGS = load_settings()
CODEC = Codec(CATALOG, SETTINGS)
TOPICS = frozenset(CATALOG.topics)
AT = LetterId(0, 7)


def letter_bytes(value: bytes | None, **overrides: Any) -> bytes:
    return CODEC.encode("dlq", {
        "event_id": "e-1", "tenant_id": "acme", "occurred_at": datetime(2026, 12, 1, tzinfo=UTC),
        "stream": "worker", "source_topic": "chat.messages", "source_partition": 2, "source_offset": 40,
        "error_type": "processing", "error": "ValueError: boom", "original_key": b"acme:s1",
        "original_value": value, "headers": {"tenant": b"acme", "redrive-of": b"dlq:0:1"}, **overrides,
    })


def chat_value() -> bytes:
    return prepare(CATALOG, CODEC, SETTINGS, "chat.messages", sample("chat.messages", "acme"), tenant="acme").value


def test_a_dead_letter_decodes_with_its_position_and_time() -> None:
    letter = from_record(CODEC, AT, letter_bytes(b"x"), 1_764_590_400_000, {})
    assert (letter.id, letter.tenant, letter.source, letter.error_type) == (AT, "acme", "chat.messages[2]@40",
                                                                            "processing")
    assert letter.timestamp == datetime(2025, 12, 1, 12, 0, tzinfo=UTC)
    assert letter.truncated is False  # a DeadLetter written before the flag existed reads as not truncated
    assert letter.original_key == b"acme:s1"
    assert letter.original_value == b"x"
    assert summary(letter)["id"] == "dlq:0:7"


def test_a_record_that_is_not_a_dead_letter_is_kept_marked_and_not_redrivable() -> None:
    letter = from_record(CODEC, AT, b"garbage", None, {"tenant": b"globex"})
    assert (letter.tenant, letter.error_type, letter.timestamp) == ("globex", UNDECODABLE, None)
    assert "not an Avro" in letter.error
    assert letter.not_redrivable(TOPICS) == "the dead-letter record itself does not decode"
    assert from_record(CODEC, AT, b"", None, {}).tenant == "unknown"


def test_the_original_decodes_with_its_source_topic_schema() -> None:
    letter = from_record(CODEC, AT, letter_bytes(chat_value()), None, {})
    view = detail(CODEC, letter)
    assert view["original"]["value"]["content"] == "hello 1"
    assert "not_decodable" not in view["original"]
    assert view["original_key"] == "acme:s1"
    assert view["original_headers"] == {"redrive-of": "dlq:0:1", "tenant": "acme"}


def test_an_original_that_does_not_decode_says_why_with_a_preview() -> None:
    raw = b"\xc3\x01" + bytes(range(200))
    view = detail(CODEC, from_record(CODEC, AT, letter_bytes(raw), None, {}))["original"]
    assert "value" not in view
    assert view["not_decodable"].startswith("chat.messages: record written with an unknown schema")
    assert view["preview_hex"] == raw[:64].hex()
    assert base64.b64decode(view["preview_base64"]) == raw
    assert view["preview_complete"] is True
    assert decode_original(CODEC, from_record(CODEC, AT, letter_bytes(None), None, {}))[1] == (
        "the original record had no value")


def test_what_cannot_be_redriven() -> None:
    letter = from_record(CODEC, AT, letter_bytes(b"x"), None, {})
    assert letter.not_redrivable(TOPICS) is None
    elsewhere = from_record(CODEC, AT, letter_bytes(b"x", source_topic="gone.topic"), None, {})
    assert "not a catalog topic" in (elsewhere.not_redrivable(TOPICS) or "")
    assert "not a catalog topic" in (decode_original(CODEC, elsewhere)[1] or "")
    cut = DeadLetter(AT, None, "e", "acme", "worker", "chat.messages", 0, 0, "processing", "big", truncated=True)
    assert "truncated" in (cut.not_redrivable(TOPICS) or "")


def test_redrive_headers_keep_the_originals_and_name_the_dead_letter_once() -> None:
    letter = from_record(CODEC, AT, letter_bytes(b"x"), None, {})
    assert redrive_headers(letter) == [("tenant", b"acme"), ("redrive-of", b"dlq:0:7")]


def test_bytes_show_as_text_when_printable() -> None:
    assert text_or_base64(None) is None
    assert text_or_base64(b"acme:s1") == "acme:s1"
    assert text_or_base64(b"\xff\x00") == "base64:/wA="
    assert text_or_base64(b"a\nb") == "base64:YQpi"
