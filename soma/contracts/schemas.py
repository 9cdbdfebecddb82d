"""The Avro schemas of a catalog's `schemas/` directory: parsed once, found by full name or by fingerprint.

A fingerprint is the CRC-64-AVRO (Rabin) of the schema's Parsing Canonical Form, as the
Avro specification's single-object encoding uses it. Released versions kept in
`schemas/history/<FullName>/v<N>.avsc` are indexed too, so a record written with an
older version is still decodable (and resolved to the current schema).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from fastavro.schema import SchemaParseException, UnknownType, fingerprint, parse_schema, to_parsing_canonical_form

from soma.contracts.location import SCHEMA_DIR
from soma.errors import CatalogError

__all__ = ["SCHEMA_DIR", "Schema", "SchemaSet", "load_schema_file", "load_schema_text"]
VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True)
class Schema:
    """One version of one event schema."""

    full_name: str
    raw: dict[str, Any] = field(repr=False)
    parsed: Any = field(repr=False)  # fastavro's parsed form, ready for the reader/writer
    canonical: str = field(repr=False)
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO, as written in single-object encoding
    path: Path
    version: int | None = None  # None: the current version (schemas/*.avsc)

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.raw.get("fields", [])]

    @cached_property
    def field_set(self) -> frozenset[str]:
        return frozenset(self.field_names)


def load_schema_file(path: Path, version: int | None = None) -> Schema:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{path}: not a valid Avro schema: {exc}") from exc
    return load_schema_text(raw, str(path), path, version)


def load_schema_text(raw: Any, origin: str, path: Path | None = None, version: int | None = None) -> Schema:
    """Parse an Avro schema (already JSON-decoded); `origin` names it in errors."""
    try:
        parsed = parse_schema(raw, _write_hint=False)
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as exc:
        raise CatalogError(f"{origin}: not a valid Avro schema: {exc}") from exc
    canonical = to_parsing_canonical_form(parsed)
    # fastavro's hex is already the little-endian byte order single-object encoding writes.
    digest = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    full_name = parsed["name"] if isinstance(parsed, dict) else str(parsed)
    return Schema(full_name, raw, parsed, canonical, digest, path or Path(origin), version)


class SchemaSet:
    """Current schemas by full name; every known version (current and released) by fingerprint."""

    def __init__(self, directory: Path = SCHEMA_DIR) -> None:
        self.directory = directory
        self.current: dict[str, Schema] = {}
        self.history: dict[str, list[Schema]] = {}
        for path in sorted(directory.glob("*.avsc")):
            schema = load_schema_file(path)
            if schema.full_name in self.current:
                first = self.current[schema.full_name].path
                raise CatalogError(f"{path}: {schema.full_name} is also defined in {first}")
            self.current[schema.full_name] = schema
        for name in self.current:
            versions = []
            for path in (directory / "history" / name).glob("v*.avsc"):
                match = VERSION_FILE.match(path.name)
                if match:
                    versions.append(load_schema_file(path, int(match.group(1))))
            self.history[name] = sorted(versions, key=lambda s: s.version or 0)
        self.by_fingerprint: dict[bytes, Schema] = {}
        for name, schema in self.current.items():
            for old in self.history[name]:
                self.by_fingerprint.setdefault(old.fingerprint, old)
            self.by_fingerprint[schema.fingerprint] = schema

    def get(self, full_name: str) -> Schema:
        try:
            return self.current[full_name]
        except KeyError:
            raise CatalogError(f"unknown schema {full_name!r} (not in {self.directory})") from None

    def writer_for(self, fp: bytes) -> Schema | None:
        return self.by_fingerprint.get(fp)
