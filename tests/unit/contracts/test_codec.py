"""The codec: every topic round-trips, the bytes follow the Avro specification, old data stays readable."""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import avro.io
import avro.schema
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from soma.contracts.catalog import CATALOG_FILE, load_catalog
from soma.contracts.codec import Codec, registry_text
from soma.contracts.schemas import SCHEMA_DIR
from soma.errors import EventValidationError, InfrastructureUnavailable
from soma.settings import load_settings
from tests.support.samples import sample

CATALOG = load_catalog()
CODEC = Codec(CATALOG, load_settings())

# CRC-64-AVRO exactly as the Avro specification gives it (Rabin fingerprint, EMPTY constant).
EMPTY = 0xC15D213AA4D7A795
TABLE = []
for i in range(256):
    fp = i
    for _ in range(8):
        fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
    TABLE.append(fp)


def rabin(data: bytes) -> int:
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ TABLE[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize("topic", sorted(CATALOG.topics))
def test_every_topic_round_trips(topic: str) -> None:
    value = CODEC.fill_defaults(topic, sample(topic))
    decoded = CODEC.decode(topic, CODEC.encode(topic, value))
    assert decoded["event_id"] == value["event_id"]
    sent_at = value["occurred_at"]
    assert decoded["occurred_at"] == sent_at.replace(microsecond=sent_at.microsecond // 1000 * 1000)  # millis
    for name, expected in sample(topic).items():
        assert decoded[name] == expected, name


@pytest.mark.parametrize("topic", sorted(CATALOG.topics))
def test_single_object_encoding_decodes_with_apache_avro_and_the_avsc_alone(topic: str) -> None:
    """Header per the spec, fingerprint recomputed here, body read by Apache's implementation."""
    spec = CATALOG.topic(topic)
    avsc = (SCHEMA_DIR / f"{spec.value_schema.rsplit('.', 1)[1]}.avsc").read_text()
    value = CODEC.fill_defaults(topic, sample(topic))
    data = CODEC.encode(topic, value)
    assert data[:2] == b"\xc3\x01"
    schema = avro.schema.parse(avsc)
    # Apache's own Parsing Canonical Form, except that avro-python keeps a logical type's
    # primitive as {"type":"long"}, where the specification's [PRIMITIVES] rule (and the Java
    # implementation) write "long".
    canonical = schema.canonical_form.replace('{"type":"long"}', '"long"')
    assert data[2:10] == rabin(canonical.encode()).to_bytes(8, "little")
    decoded = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
    assert decoded["event_id"] == value["event_id"]
    assert decoded["tenant_id"] == "tenant-a"


def test_spec_example_fingerprint() -> None:
    # The specification's single-object example: schema "int" -> 8F 5C 39 3F 1A D5 75 72.
    assert rabin(b'"int"').to_bytes(8, "little").hex() == "8f5c393f1ad57572"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"role": "bot"}, "chat.messages: field 'role': 'bot' is not one of user, assistant, tool, system"),
        ({"sequence": "seven"}, "chat.messages: field 'sequence': expected long, got 'seven'"),
        ({"tool_calls": [{"call_id": "c", "tool": "t"}]},
         "chat.messages: field 'tool_calls[0].arguments_json': missing (required, no default)"),
        ({"content": None}, "chat.messages: field 'content': expected string, got None"),
    ],
)
def test_invalid_values_name_the_field(change: dict, message: str) -> None:
    value = CODEC.fill_defaults("chat.messages", {**sample("chat.messages"), **change})
    with pytest.raises(EventValidationError) as caught:
        CODEC.encode("chat.messages", value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("topic", "change", "message"),
    [
        # Values fastavro's writer would write anyway (truncated, coerced or dropped): refused.
        ("chat.messages", {"sequence": 1.5}, "field 'sequence': expected long, got 1.5"),
        ("chat.messages", {"sequence": True}, "field 'sequence': expected long, got True"),
        ("chat.messages", {"contnt": "typo"}, "field 'contnt': not a field of ChatMessage"),
        ("chat.messages", {"tool_calls": [{"call_id": "c", "tool": "t", "arguments_json": "{}", "x": 1}]},
         "field 'tool_calls[0].x': not a field of ToolCall"),
        ("chat.messages", {"tool_calls": "abc"}, "field 'tool_calls': expected an array, got str"),
        ("chat.messages", {"occurred_at": 1.5}, "field 'occurred_at': expected a timestamp"),
        ("cog.global_frame", {"vetoed": "no"}, "field 'vetoed': expected boolean, got 'no'"),
        ("cog.global_frame", {"weights": {"planning": True}}, "field 'weights['planning']': expected double, got True"),
        ("cog.predictor_updates", {"confidence": False}, "field 'confidence': expected double, got False"),
        ("dlq", {"source_partition": 2**40}, "field 'source_partition': expected int, got 1099511627776"),
        ("tool.requests", {"timeout_ms": 2.5}, "field 'timeout_ms': expected int, got 2.5"),
    ],
)
def test_values_fastavro_would_coerce_are_refused_naming_the_field(topic: str, change: dict, message: str) -> None:
    value = CODEC.fill_defaults(topic, {**sample(topic), **change})
    with pytest.raises(EventValidationError) as caught:
        CODEC.encode(topic, value)
    assert str(caught.value).startswith(f"{topic}: {message}")


def test_missing_field_is_named() -> None:
    value = CODEC.fill_defaults("tool.results", sample("tool.results"))
    del value["status"]
    with pytest.raises(EventValidationError, match="field 'status': missing"):
        CODEC.encode("tool.results", value)


def test_json_input_is_strict_and_converted() -> None:
    with pytest.raises(EventValidationError, match="field 'contnt': not a field of ChatMessage"):
        CODEC.from_json("chat.messages", {**sample("chat.messages"), "contnt": "typo"})
    typed = {**sample("dlq"), "original_value": "AAE=", "occurred_at": "2026-01-02T03:04:05Z"}
    converted = CODEC.from_json("dlq", typed)
    assert converted["original_value"] == b"\x00\x01"
    assert converted["occurred_at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    printed = CODEC.to_json("dlq", CODEC.decode("dlq", CODEC.encode("dlq", CODEC.fill_defaults("dlq", converted))))
    assert printed["original_value"] == "AAE="
    assert printed["occurred_at"] == "2026-01-02T03:04:05.000Z"
    json.dumps(printed)


def test_undecodable_bytes_are_a_clear_error() -> None:
    with pytest.raises(EventValidationError, match="not an Avro single-object or Confluent-framed record"):
        CODEC.decode("chat.messages", b"{json}")
    with pytest.raises(EventValidationError, match="unknown schema"):
        CODEC.decode("chat.messages", b"\xc3\x01" + b"\x00" * 8 + b"\x00")
    good = CODEC.encode("chat.messages", CODEC.fill_defaults("chat.messages", sample("chat.messages")))
    with pytest.raises(EventValidationError, match="cannot decode the record body"):
        CODEC.decode("chat.messages", good[:14])


def _evolved_catalog(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the schemas where ChatMessage v1 is released and the current one adds a field."""
    schemas = tmp_path / "avro"
    shutil.copytree(SCHEMA_DIR, schemas)
    current = json.loads((schemas / "ChatMessage.avsc").read_text())
    current["fields"].append({"name": "priority", "type": "int", "default": 0, "doc": "Added in v2."})
    (schemas / "ChatMessage.avsc").write_text(json.dumps(current))
    return CATALOG_FILE, schemas


def test_a_record_written_with_an_older_schema_decodes_with_the_current_one(tmp_path: Path) -> None:
    old_bytes = CODEC.encode("chat.messages", CODEC.fill_defaults("chat.messages", sample("chat.messages")))
    new_codec = Codec(load_catalog(*_evolved_catalog(tmp_path)), load_settings())
    decoded = new_codec.decode("chat.messages", old_bytes)
    assert decoded["priority"] == 0
    assert decoded["content"] == "hello 1"


def test_confluent_wire_format_through_the_registry_client() -> None:
    """With a registry: magic 0 + 4-byte id; the id resolves through confluent-kafka's (mock) client."""
    registry = SchemaRegistryClient.new_client({"url": "mock://soma-tests"})
    codec = Codec(CATALOG, load_settings(topic_prefix="p."), registry=registry)
    value = codec.fill_defaults("tool.results", sample("tool.results"))
    data = codec.encode("tool.results", value)
    assert data[0] == 0
    schema_id = int.from_bytes(data[1:5], "big")
    registered = registry.get_latest_version("p.tool.results-value")
    assert registered.schema_id == schema_id
    assert codec.decode("tool.results", data)["event_id"] == value["event_id"]
    # Decoding accepts both formats whatever the setting.
    assert codec.decode("tool.results", CODEC.encode("tool.results", value))["event_id"] == value["event_id"]


def test_registry_url_setting_selects_the_confluent_format() -> None:
    codec = Codec(CATALOG, load_settings(schema_registry_url="mock://soma-settings"))
    value = codec.fill_defaults("chat.messages", sample("chat.messages"))
    first, second = codec.encode("chat.messages", value), codec.encode("chat.messages", value)
    assert first[0] == 0
    assert first[:5] == second[:5]  # the schema id is registered once and cached
    assert codec.decode("chat.messages", first)["content"] == "hello 1"


def test_confluent_framed_record_without_registry_names_the_setting() -> None:
    with pytest.raises(EventValidationError, match="SOMA_SCHEMA_REGISTRY_URL is not set"):
        CODEC.decode("tool.results", b"\x00\x00\x00\x00\x07\x00")


def test_the_whole_schema_is_registered_so_defaults_reach_the_registry() -> None:
    """The canonical form drops defaults: a registry's BACKWARD check would refuse every added field."""
    registry = SchemaRegistryClient.new_client({"url": "mock://soma-full-schema"})
    codec = Codec(CATALOG, load_settings(), registry=registry)
    codec.encode("chat.messages", codec.fill_defaults("chat.messages", sample("chat.messages")))
    registered = json.loads(registry.get_latest_version("chat.messages-value").schema.schema_str)
    assert registered == codec.schema("chat.messages").raw
    assert registry_text(codec.schema("chat.messages")) == json.dumps(registered, separators=(",", ":"))


def test_unreachable_registry_is_one_line_naming_the_setting_not_the_url() -> None:
    codec = Codec(CATALOG, load_settings(schema_registry_url="http://user:hunter2@127.0.0.1:1/apis/ccompat/v7"))
    value = codec.fill_defaults("chat.messages", sample("chat.messages"))
    for attempt in (lambda: codec.encode("chat.messages", value),
                    lambda: codec.decode("chat.messages", b"\x00\x00\x00\x00\x07\x00")):
        with pytest.raises(InfrastructureUnavailable) as caught:
            attempt()
        message = str(caught.value)
        assert message.startswith("chat.messages: schema registry unreachable (SOMA_SCHEMA_REGISTRY_URL): ")
        assert "\n" not in message
        assert "hunter2" not in message


def test_unknown_registry_schema_id_is_a_bad_record_not_a_crash() -> None:
    codec = Codec(CATALOG, load_settings(), registry=SchemaRegistryClient.new_client({"url": "mock://soma-empty"}))
    with pytest.raises(EventValidationError, match=r"^tool.results: registry schema id 7: "):
        codec.decode("tool.results", b"\x00\x00\x00\x00\x07\x00")
