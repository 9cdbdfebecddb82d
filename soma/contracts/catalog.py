"""The topic catalog (`topics.yaml`): every topic's key, value schema, partitions and configs.

`load_catalog()` reads the catalog directory of the settings (`SOMA_CATALOG_DIR`, else the one
shipped in the package: soma/contracts/location.py), validates `topics.yaml` against the schemas
in its `schemas/` and names the offending line on any problem: unknown schema, duplicate topic,
bad cleanup policy, a key template naming a field the schema lacks, a required topic missing.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from soma.contracts.environments import Environment, parse_environments
from soma.contracts.environments import apply as apply_env
from soma.contracts.location import CATALOG_FILE, CATALOG_NAME, SCHEMA_DIR, SCHEMAS_NAME, catalog_dir
from soma.contracts.schemas import SchemaSet
from soma.errors import CatalogError
from soma.settings.values import env_name

if TYPE_CHECKING:
    from soma.settings import Settings

__all__ = ["CATALOG_FILE", "REQUIRED_TOPICS", "SCHEMA_DIR", "Catalog", "TopicSpec", "load_catalog"]

# Named in ARCHITECTURE.md; the catalog must hold them with exactly these names.
REQUIRED_TOPICS = frozenset({
    "chat.messages", "tool.requests", "tool.results", "cog.predictor_updates", "cog.global_frame",
    "cog.segments", "config_updates", "memory.writes", "outbox.audit", "dlq",
})
CLEANUP_POLICIES = frozenset({"delete", "compact", "compact,delete", "delete,compact"})
TOPIC_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,200}$")
# A key template is text with {field} references; a [bracketed] part is left out when any
# field in it is null or empty, e.g. "[{scope_tenant}/]{name}" -> "NAME" or "t1/NAME".
_KEY_PART = re.compile(r"\[([^\[\]]*)\]|([^\[\]]+)")
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
    max_message_bytes: int | None = None  # optional: lowers SOMA_KAFKA_MAX_MESSAGE_BYTES for this topic
    min_insync_replicas: int | None = None  # optional: None leaves the broker's default (1)

    @property
    def key_fields(self) -> list[str]:
        return [name for _, fields, _ in self._key_parts for name in fields]

    @cached_property
    def _key_parts(self) -> tuple[tuple[str, tuple[str, ...], bool], ...]:
        """(template, the fields it names, optional?) per part of the key template, parsed once."""
        parts = []
        for match in _KEY_PART.finditer(self.key):
            optional = match.group(1) is not None
            text = match.group(1) if optional else match.group(2)
            fields = tuple(name for _, name, _, _ in string.Formatter().parse(text) if name)
            parts.append((text, fields, optional))
        return tuple(parts)

    def build_key(self, value: Mapping[str, Any]) -> str:
        """The record key for `value`: a null or missing field renders empty and drops its [optional] part."""
        pieces = []
        for template, fields, optional in self._key_parts:
            values = {name: "" if value.get(name) is None else value[name] for name in fields}
            if optional and any(values[name] == "" for name in fields):
                continue
            pieces.append(template.format_map(values))
        return "".join(pieces)


@dataclass(frozen=True)
class Catalog:
    topics: Mapping[str, TopicSpec]
    schemas: SchemaSet
    path: Path
    environments: Mapping[str, Environment] = field(default_factory=dict)
    env: str | None = None  # the environment whose overrides the topics carry (None: the file's own values)
    _by_physical: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _by_env: dict[str, Catalog] = field(default_factory=dict, init=False, repr=False, compare=False)

    def for_env(self, env: str | None) -> Catalog:
        """This catalog with environment `env`'s overrides applied (None: as it is); unknown: one line naming it."""
        if env is None or env == self.env:
            return self
        if self.env is not None:
            raise CatalogError(f"the catalog already carries environment {self.env!r}'s overrides")
        if env not in self.environments:
            known = ", ".join(sorted(self.environments)) or "none"
            raise CatalogError(f"{env_name('env')}={env!r}: no such environment in {self.path.name} (known: {known})")
        if env not in self._by_env:
            chosen = self.environments[env]
            topics = {name: apply_env(spec, chosen) for name, spec in self.topics.items()}
            self._by_env[env] = Catalog(topics, self.schemas, self.path, self.environments, env)
        return self._by_env[env]

    def topic(self, name: str) -> TopicSpec:
        """The spec of a documented topic; any other name is a one-line error."""
        try:
            return self.topics[name]
        except KeyError:
            raise CatalogError(f"unknown topic {name!r}: not documented in {self.path.name}") from None

    def physical_name(self, topic: str, settings: Settings) -> str:
        """The broker's name of a documented topic (`SOMA_TOPIC_PREFIX` in front)."""
        return settings.topic_name(self.topic(topic).name)

    def logical_name(self, physical: str, settings: Settings) -> str | None:
        """The catalog topic behind a broker topic name, or None when it is not one of ours."""
        by_physical = self._by_physical.get(settings.kafka.topic_prefix)
        if by_physical is None:  # built once per prefix: consumers ask for every record
            by_physical = {settings.topic_name(name): name for name in self.topics}
            self._by_physical[settings.kafka.topic_prefix] = by_physical
        return by_physical.get(physical)


@dataclass(frozen=True)
class _Where:
    """Where one topic entry sits in the file, so an error can name the offending line."""

    file: str
    line: int  # the entry's "- name:" line
    fields: Mapping[str, int]  # each field's own line

    def at(self, field: str | None = None) -> str:
        return f"{self.file}:{self.fields.get(field, self.line) if field else self.line}"


def _positions(document: yaml.Node | None, file: str) -> tuple[int, list[_Where]]:
    """The line of the `topics:` key and the position of each entry of its list, in order."""
    if isinstance(document, yaml.MappingNode):
        for key, value in document.value:
            if getattr(key, "value", None) == "topics" and isinstance(value, yaml.SequenceNode):
                entries = []
                for item in value.value:
                    fields = {}
                    if isinstance(item, yaml.MappingNode):
                        fields = {str(k.value): k.start_mark.line + 1 for k, _ in item.value}
                    entries.append(_Where(file, item.start_mark.line + 1, fields))
                return key.start_mark.line + 1, entries
    return 1, []


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _spec(entry: Any, where: _Where, schemas: SchemaSet) -> TopicSpec:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where.at()}: each topic must be a mapping")
    missing = [name for name in FIELDS if name not in entry]
    if missing:
        raise CatalogError(f"{where.at()}: topic {entry.get('name', '?')!r} lacks {', '.join(missing)}")
    name = str(entry["name"])

    def fail(field: str, problem: str) -> CatalogError:
        return CatalogError(f"{where.at(field)}: topic {name!r}: {problem}")

    if not TOPIC_NAME.match(name):
        raise fail("name", "not a valid Kafka topic name (lower case, digits, '.', '_', '-')")
    if not isinstance(entry["description"], str) or not entry["description"].strip():
        raise fail("description", "description must be a non-empty text")
    value_schema = str(entry["value_schema"])
    if value_schema not in schemas.current:
        raise fail("value_schema", f"unknown value_schema {value_schema!r}")
    policy = str(entry["cleanup_policy"])
    if policy not in CLEANUP_POLICIES:
        raise fail("cleanup_policy", f"cleanup_policy {policy!r} is not one of {', '.join(sorted(CLEANUP_POLICIES))}")
    for count in ("partitions", "replication_factor"):
        if not _positive_int(entry[count]):
            raise fail(count, f"{count} must be a positive integer")
    retention = entry["retention_ms"]
    if retention is not None and not _positive_int(retention):
        raise fail("retention_ms", "retention_ms must be a positive integer or null (forever)")
    for role in ("producers", "consumers"):
        if not isinstance(entry[role], list) or not entry[role]:
            raise fail(role, f"{role} must be a non-empty list")
    max_bytes = entry.get("max_message_bytes")
    if max_bytes is not None and not _positive_int(max_bytes):
        raise fail("max_message_bytes", "max_message_bytes must be a positive integer (bytes) when given")
    min_isr = entry.get("min_insync_replicas")
    if min_isr is not None and (not _positive_int(min_isr) or min_isr > entry["replication_factor"]):
        raise fail("min_insync_replicas", "min_insync_replicas must be a positive integer, at most replication_factor")
    spec = TopicSpec(
        name=name, description=entry["description"].strip(), key=str(entry["key"]),
        key_description=str(entry.get("key_description") or ""), value_schema=value_schema,
        partitions=entry["partitions"], replication_factor=entry["replication_factor"],
        cleanup_policy=policy, retention_ms=retention,
        producers=tuple(str(p) for p in entry["producers"]),
        consumers=tuple(str(c) for c in entry["consumers"]), line=where.line, max_message_bytes=max_bytes,
        min_insync_replicas=min_isr,
    )
    _check_key(spec, where, set(schemas.get(value_schema).field_names))
    return spec


def _check_key(spec: TopicSpec, where: _Where, fields: set[str]) -> None:
    at = f"{where.at('key')}: topic {spec.name!r}: key {spec.key!r}"
    try:
        parsed = "".join(m.group(0) for m in _KEY_PART.finditer(spec.key))
        key_fields = spec.key_fields
    except ValueError as exc:  # string.Formatter: an unbalanced "{"
        raise CatalogError(f"{at} is not a valid template: {exc}") from None
    if parsed != spec.key:
        raise CatalogError(f"{at} has an unbalanced or nested [optional] part")
    unknown = [field for field in key_fields if field not in fields]
    if unknown or not key_fields:
        detail = f" (no field {unknown[0]!r})" if unknown else ""
        raise CatalogError(f"{at} must name fields of {spec.value_schema}{detail}")


def load_catalog(
    path: Path | None = None, schema_dir: Path | None = None, *, settings: Settings | None = None
) -> Catalog:
    """Load and validate the catalog.

    Without `path`/`schema_dir`: the catalog directory of `settings` (read from the environment
    when not given): `SOMA_CATALOG_DIR`, else the packaged one; loaded once per directory.
    """
    if path is None and schema_dir is None:
        if settings is None:
            from soma.settings import load_settings

            settings = load_settings()
        return _directory_catalog(catalog_dir(settings))
    path = CATALOG_FILE if path is None else Path(path)
    schema_dir = SCHEMA_DIR if schema_dir is None else Path(schema_dir)
    if path == CATALOG_FILE and schema_dir == SCHEMA_DIR:
        return _directory_catalog(CATALOG_FILE.parent)
    return _load(path, schema_dir)


def catalog_for(settings: Settings) -> Catalog:
    """The catalog of `settings` (`SOMA_CATALOG_DIR` or the packaged one) with the overrides of its environment
    (`SOMA_ENV`)."""
    return load_catalog(settings=settings).for_env(settings.kafka.env)


@cache
def _directory_catalog(directory: Path) -> Catalog:
    return _load(directory / CATALOG_NAME, directory / SCHEMAS_NAME)


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
    topics_line, positions = _positions(document, path.name)
    topics: dict[str, TopicSpec] = {}
    for index, entry in enumerate(data["topics"]):
        where = positions[index] if index < len(positions) else _Where(path.name, topics_line, {})
        spec = _spec(entry, where, schemas)
        if spec.name in topics:
            raise CatalogError(
                f"{where.at('name')}: duplicate topic {spec.name!r} (first at line {topics[spec.name].line})"
            )
        topics[spec.name] = spec
    missing = sorted(REQUIRED_TOPICS - set(topics))
    if missing:
        raise CatalogError(f"{path.name}:{topics_line}: required topics missing: {', '.join(missing)}")
    environments = parse_environments(data.get("environments"), document, path.name, topics)
    return Catalog(topics=topics, schemas=schemas, path=path, environments=environments)
