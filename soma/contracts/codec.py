"""Avro encoding and decoding of catalog events (fastavro), in either wire format.

- Default: Avro single-object encoding (specification, "Single-object encoding"): `C3 01`,
  the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's canonical form,
  then the binary body. Any Avro implementation decodes it given the `.avsc` files.
- With `SOMA_SCHEMA_REGISTRY_URL` (or the local stack's registry, `SOMA_STACK_REGISTRY=apicurio`):
  the Confluent wire format (`00`, 4-byte big-endian schema
  id, body) through confluent-kafka's registry client, subject `<topic>-value`.

Decoding accepts both, whatever the setting. A record written with an older released
version of a schema is resolved to the current one (Avro schema resolution).
"""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from soma.contracts import avro_json
from soma.contracts.catalog import Catalog
from soma.contracts.fastcheck import Check, compile_check
from soma.contracts.schemas import Schema
from soma.errors import EventValidationError, InfrastructureUnavailable, first_line
from soma.settings import Settings, env_name

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SINGLE_HEADER = 10  # magic (2) + fingerprint (8)
_CONFLUENT_HEADER = 5  # magic (1) + schema id (4)


def registry_text(schema: Schema) -> str:
    """The text registered for `schema`: the whole schema, compact (a registry tells versions apart by text).

    Not the canonical form: that drops defaults, and a registry's BACKWARD check would then
    refuse every evolution that adds a field with a default.
    """
    return json.dumps(schema.raw, separators=(",", ":"))


@contextmanager
def _reachable(topic: str) -> Iterator[None]:
    """A registry call's transport failure as one line naming the setting (never the URL: it may hold a password).

    The client raises its HTTP library's own errors (httpx or httpx2, whichever it was installed
    with) besides SchemaRegistryError, which passes through for the caller to word.
    """
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        yield
    except SchemaRegistryError:
        raise
    except Exception as exc:
        raise InfrastructureUnavailable(
            f"{topic}: schema registry unreachable ({env_name('schema_registry_url')}): {first_line(exc)}"
        ) from exc


def _unencodable(value: Any, path: str = "") -> str | None:
    """The path of the first text in `value` that UTF-8 cannot encode."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return path
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, item in items:
        found = _unencodable(item, f"{path}.{name}" if path else str(name))
        if found is not None:
            return found
    return None


class Codec:
    def __init__(self, catalog: Catalog, settings: Settings, registry: Any | None = None) -> None:
        self.catalog = catalog
        self.settings = settings
        # Per topic: the current schema and, for single-object encoding, its header.
        self._schema: dict[str, Schema] = {
            name: catalog.schemas.get(spec.value_schema) for name, spec in catalog.topics.items()
        }
        self._registry = registry
        url = settings.schema_registry_url_value()
        if registry is None and url is not None:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            self._registry = SchemaRegistryClient.new_client({"url": url})
        self._header: dict[str, bytes] = {}
        self._registry_schemas: dict[int, Schema] = {}
        # Compiled once: the checks fastavro's writer skips (see soma.contracts.fastcheck).
        self._check: dict[str, Check] = {name: compile_check(schema.parsed) for name, schema in self._schema.items()}

    def schema(self, topic: str) -> Schema:
        try:
            return self._schema[topic]
        except KeyError:
            self.catalog.topic(topic)  # raises the one-line "unknown topic" error
            raise

    # --- encoding ------------------------------------------------------------------------
    def _header_for(self, topic: str) -> bytes:
        header = self._header.get(topic)
        if header is None:
            schema = self.schema(topic)
            if self._registry is None:
                header = SINGLE_OBJECT_MAGIC + schema.fingerprint
            else:
                header = CONFLUENT_MAGIC + struct.pack(">I", self._register(topic, schema))
            self._header[topic] = header
        return header

    def _register(self, topic: str, schema: Schema) -> int:
        from confluent_kafka.schema_registry import Schema as RegistrySchema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        subject = f"{self.settings.topic_name(topic)}-value"
        try:
            registry: Any = self._registry
            with _reachable(topic):
                schema_id = int(registry.register_schema(subject, RegistrySchema(registry_text(schema), "AVRO")))
        except SchemaRegistryError as exc:
            raise EventValidationError(
                f"{topic}: schema registry ({env_name('schema_registry_url')}) refused {subject}: {exc}"
            ) from exc
        self._registry_schemas[schema_id] = schema
        return schema_id

    def encode(self, topic: str, value: dict[str, Any]) -> bytes:
        """`value` as wire bytes; a value that does not fit the schema raises, naming the field.

        Unknown fields are refused too (they would be dropped silently).
        """
        header = self._header.get(topic) or self._header_for(topic)
        schema = self._schema[topic]
        # fastavro raises on most mismatches; this cheap pass catches what it would write anyway.
        if not self._check[topic](value):
            raise self._invalid(topic, schema, value, "does not fit the schema")
        buffer = BytesIO()
        buffer.write(header)
        try:
            schemaless_writer(buffer, schema.parsed, value)
        except UnicodeEncodeError as exc:  # a str holding a lone surrogate (e.g. from invalid UTF-8 input)
            where = _unencodable(value) or "?"
            raise EventValidationError(f"{topic}: field {where!r}: text is not valid UTF-8 ({exc.reason})") from exc
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error) as exc:
            raise self._invalid(topic, schema, value, str(exc)) from exc
        return buffer.getvalue()

    @staticmethod
    def _invalid(topic: str, schema: Schema, value: Any, fallback: str) -> EventValidationError:
        """The one-line error naming the field (the slow, precise walk runs only on failure)."""
        problem = avro_json.find_problem(schema.raw, value, strict=True) or fallback
        return EventValidationError(f"{topic}: {problem}")

    def reject_unknown_fields(self, topic: str, value: dict[str, Any]) -> None:
        """Cheap strictness for the write path: a misspelt field is an error, not silently dropped."""
        schema = self.schema(topic)
        extra = value.keys() - schema.field_set
        if extra:
            raise EventValidationError(f"{topic}: field '{sorted(extra)[0]}': not a field of {schema.full_name}")

    def validate(self, topic: str, value: dict[str, Any]) -> None:
        """Strict check (unknown fields too) with a message naming the field; raises EventValidationError."""
        problem = avro_json.find_problem(self.schema(topic).raw, value, strict=True)
        if problem:
            raise EventValidationError(f"{topic}: {problem}")

    # --- decoding ------------------------------------------------------------------------
    def writer_schema(self, topic: str, data: bytes) -> tuple[Schema, int]:
        """The schema `data` was written with, and where its body starts."""
        if data[:2] == SINGLE_OBJECT_MAGIC:
            writer = self.catalog.schemas.writer_for(data[2:_SINGLE_HEADER])
            if writer is None:
                raise EventValidationError(
                    f"{topic}: record written with an unknown schema (fingerprint {data[2:_SINGLE_HEADER].hex()})"
                )
            return writer, _SINGLE_HEADER
        if data[:1] == CONFLUENT_MAGIC and len(data) >= _CONFLUENT_HEADER:
            (schema_id,) = struct.unpack(">I", data[1:_CONFLUENT_HEADER])
            return self._registry_schema(topic, schema_id), _CONFLUENT_HEADER
        raise EventValidationError(f"{topic}: not an Avro single-object or Confluent-framed record")

    def _registry_schema(self, topic: str, schema_id: int) -> Schema:
        known = self._registry_schemas.get(schema_id)
        if known is not None:
            return known
        if self._registry is None:
            raise EventValidationError(
                f"{topic}: record uses registry schema id {schema_id} but {env_name('schema_registry_url')} is not set"
            )
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        from soma.contracts.schemas import load_schema_text

        try:
            with _reachable(topic):
                registered = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            raise EventValidationError(f"{topic}: registry schema id {schema_id}: {exc}") from exc
        schema = load_schema_text(json.loads(registered.schema_str), f"registry id {schema_id}")
        self._registry_schemas[schema_id] = schema
        return schema

    def decode(self, topic: str, data: bytes) -> dict[str, Any]:
        """Wire bytes back into a record of the topic's current schema."""
        reader = self.schema(topic)
        writer, start = self.writer_schema(topic, data)
        buffer = BytesIO(data)
        buffer.seek(start)
        try:
            if writer.fingerprint == reader.fingerprint:
                record = schemaless_reader(buffer, reader.parsed, None)
            else:
                record = schemaless_reader(buffer, writer.parsed, reader.parsed)
        except Exception as exc:  # fastavro signals truncation/resolution failures with many types
            raise EventValidationError(f"{topic}: cannot decode the record body: {exc}") from exc
        if not isinstance(record, dict):
            raise EventValidationError(f"{topic}: decoded value is not a record")
        return record

    # --- helpers for people and services ----------------------------------------------------
    @staticmethod
    def fill_defaults(topic: str, value: dict[str, Any]) -> dict[str, Any]:
        """A copy of `value` with `event_id` (uuid4) and `occurred_at` (now) set when absent."""
        filled = dict(value)
        if not filled.get("event_id"):
            filled["event_id"] = str(uuid.uuid4())
        if filled.get("occurred_at") is None:
            filled["occurred_at"] = datetime.now(UTC)
        return filled

    def from_json(self, topic: str, value: dict[str, Any]) -> dict[str, Any]:
        """JSON-friendly values (ISO-8601 timestamps, base64 bytes) to Avro-ready ones, strictly checked."""
        converted: dict[str, Any] = dict(avro_json.from_json(self.schema(topic).raw, value, path=""))
        # event_id and occurred_at may be absent: fill_defaults sets them before encoding.
        placeholders: dict[str, Any] = {"event_id": "", "occurred_at": 0}
        problem = avro_json.find_problem(self.schema(topic).raw, {**placeholders, **converted}, strict=True)
        if problem:
            raise EventValidationError(f"{topic}: {problem}")
        return converted

    def to_json(self, topic: str, record: dict[str, Any]) -> dict[str, Any]:
        """A decoded record as JSON-friendly values (timestamps ISO-8601 UTC, bytes base64)."""
        result = avro_json.to_json(record)
        return result if isinstance(result, dict) else {}
