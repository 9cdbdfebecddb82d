"""The topic catalog (`topics.yaml`): every topic's key, value schema, partitions and configs.

`load_catalog()` validates the file against the schemas in `schemas/avro/` and names the
offending line on any problem: unknown schema, duplicate topic, bad cleanup policy, a key
template naming a field the schema lacks, a required topic missing.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from soma.errors import CatalogError
from soma.schemas import REPO_ROOT, SCHEMA_DIR, SchemaSet

CATALOG_FILE = REPO_ROOT / "topics.yaml"

# Named in ARCHITECTURE.md; the catalog must hold them with exactly these names.
REQUIRED_TOPICS = frozenset({
    "chat.messages", "tool.requests", "tool.results", "cog.predictor_updates", "cog.global_frame",
    "cog.segments", "config_updates", "memory.writes", "outbox.audit", "dlq",
})
CLEANUP_POLICIES = frozenset({"delete", "compact", "compact,delete", "delete,compact"})
TOPIC_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,200}$")
FIELDS = ("name", "description", "key", "value_schema", "partitions", "replication_factor",
          "cleanup_policy", "retention_ms", "producers", "consumers")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str
    key: str  # template over the value's fields, e.g. "{tenant_id}:{session_id}"
    key_description: str
    value_schema: str  # Avro full name
    partitions: int
    replication_factor: int
    cleanup_policy: str
    retention_ms: int | None
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    line: int

    @property
    def key_fields(self) -> list[str]:
        return [name for _, name, _, _ in string.Formatter().parse(self.key) if name]

    def build_key(self, value: Mapping[str, Any]) -> str:
        """The record key for `value` (a missing or null field renders as empty)."""
        return self.key.format_map({name: "" if value.get(name) is None else value[name] for name in self.key_fields})


@dataclass(frozen=True)
class Catalog:
    topics: Mapping[str, TopicSpec]
    schemas: SchemaSet
    path: Path

    def topic(self, name: str) -> TopicSpec:
        """The spec of a documented topic; any other name is a one-line error."""
        try:
            return self.topics[name]
        except KeyError:
            raise CatalogError(f"unknown topic {name!r}: not documented in {self.path.name}") from None


def _lines(document: yaml.Node) -> list[int]:
    """Line numbers (1-based) of each entry of the `topics:` list, in order."""
    if isinstance(document, yaml.MappingNode):
        for key, value in document.value:
            if getattr(key, "value", None) == "topics" and isinstance(value, yaml.SequenceNode):
                return [item.start_mark.line + 1 for item in value.value]
    return []


def _spec(entry: Any, where: str, schemas: SchemaSet, line: int) -> TopicSpec:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: each topic must be a mapping")
    missing = [name for name in FIELDS if name not in entry]
    if missing:
        raise CatalogError(f"{where}: topic {entry.get('name', '?')!r} lacks {', '.join(missing)}")
    name = str(entry["name"])
    if not TOPIC_NAME.match(name):
        raise CatalogError(f"{where}: topic name {name!r} is not a valid Kafka topic name")
    value_schema = str(entry["value_schema"])
    if value_schema not in schemas.current:
        raise CatalogError(f"{where}: topic {name!r}: unknown value_schema {value_schema!r}")
    policy = str(entry["cleanup_policy"])
    if policy not in CLEANUP_POLICIES:
        allowed = ", ".join(sorted(CLEANUP_POLICIES))
        raise CatalogError(f"{where}: topic {name!r}: cleanup_policy {policy!r} is not one of {allowed}")
    for count in ("partitions", "replication_factor"):
        if not isinstance(entry[count], int) or isinstance(entry[count], bool) or entry[count] < 1:
            raise CatalogError(f"{where}: topic {name!r}: {count} must be a positive integer")
    retention = entry["retention_ms"]
    if retention is not None and (not isinstance(retention, int) or retention < 1):
        raise CatalogError(f"{where}: topic {name!r}: retention_ms must be a positive integer or null")
    spec = TopicSpec(
        name=name, description=str(entry["description"]), key=str(entry["key"]),
        key_description=str(entry.get("key_description", "")), value_schema=value_schema,
        partitions=entry["partitions"], replication_factor=entry["replication_factor"],
        cleanup_policy=policy, retention_ms=retention,
        producers=tuple(str(p) for p in entry["producers"] or ()),
        consumers=tuple(str(c) for c in entry["consumers"] or ()), line=line,
    )
    fields = set(schemas.get(value_schema).field_names)
    unknown = [field for field in spec.key_fields if field not in fields]
    if unknown or not spec.key_fields:
        raise CatalogError(
            f"{where}: topic {name!r}: key {spec.key!r} must name fields of {value_schema}"
            + (f" (no field {unknown[0]!r})" if unknown else "")
        )
    return spec


def load_catalog(path: Path = CATALOG_FILE, schema_dir: Path = SCHEMA_DIR) -> Catalog:
    """Load and validate the catalog (cached for the default files)."""
    if path == CATALOG_FILE and schema_dir == SCHEMA_DIR:
        return _default_catalog()
    return _load(path, schema_dir)


@cache
def _default_catalog() -> Catalog:
    return _load(CATALOG_FILE, SCHEMA_DIR)


def _load(path: Path, schema_dir: Path) -> Catalog:
    try:
        text = path.read_text()
        document = yaml.compose(text)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the catalog: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise CatalogError(f"{path.name}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("topics"), list):
        raise CatalogError(f"{path.name}:1: expected a mapping with a 'topics' list")
    schemas = SchemaSet(schema_dir)
    lines = _lines(document) if document is not None else []
    topics: dict[str, TopicSpec] = {}
    for index, entry in enumerate(data["topics"]):
        line_no = lines[index] if index < len(lines) else 0
        where = f"{path.name}:{line_no}"
        spec = _spec(entry, where, schemas, line_no)
        if spec.name in topics:
            raise CatalogError(f"{where}: duplicate topic {spec.name!r} (first at line {topics[spec.name].line})")
        topics[spec.name] = spec
    missing = sorted(REQUIRED_TOPICS - set(topics))
    if missing:
        raise CatalogError(f"{path.name}: required topics missing: {', '.join(missing)}")
    return Catalog(topics=topics, schemas=schemas, path=path)
