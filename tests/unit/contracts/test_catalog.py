"""The catalog loader: the real topics.yaml is valid, and each kind of mistake names its line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from soma.contracts.catalog import CATALOG_FILE, REQUIRED_TOPICS, load_catalog
from soma.contracts.schemas import SCHEMA_DIR
from soma.errors import CatalogError

ENVELOPE = ["event_id", "tenant_id", "occurred_at"]


def test_catalog_holds_every_topic_the_architecture_names() -> None:
    catalog = load_catalog()
    assert set(catalog.topics) >= REQUIRED_TOPICS
    assert catalog.topic("config_updates").cleanup_policy == "compact"
    for spec in catalog.topics.values():
        assert spec.description
        assert spec.producers
        assert spec.consumers


def _named_types(schema: object) -> list[dict]:
    """Every record and enum defined anywhere in `schema` (nested ones included)."""
    found: list[dict] = []
    if isinstance(schema, list):
        for branch in schema:
            found += _named_types(branch)
    elif isinstance(schema, dict):
        if schema.get("type") in {"record", "enum"}:
            found.append(schema)
        for field in schema.get("fields", []):
            found += _named_types(field["type"])
        for nested in ("items", "values"):
            found += _named_types(schema.get(nested))
    return found


def test_every_schema_documents_every_field_and_carries_the_envelope() -> None:
    paths = sorted(SCHEMA_DIR.glob("*.avsc"))
    assert len(paths) == 12
    for path in paths:
        raw = json.loads(path.read_text())
        assert raw["namespace"] == "soma.events", path.name
        assert [f["name"] for f in raw["fields"][:3]] == ENVELOPE, path.name
        assert raw["fields"][0]["type"] == raw["fields"][1]["type"] == "string", path.name
        assert raw["fields"][2]["type"] == {"type": "long", "logicalType": "timestamp-millis"}, path.name
        for named in _named_types(raw):
            assert named.get("doc"), f"{path.name}: {named['name']} has no doc"
            undocumented = [f["name"] for f in named.get("fields", []) if not f.get("doc", "").strip()]
            assert undocumented == [], f"{path.name}: {named['name']}"


def test_union_defaults_match_the_first_branch() -> None:
    """Avro before 1.12 (and the Java implementation) take a union's default from its first branch."""
    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        for named in _named_types(json.loads(path.read_text())):
            for field in named.get("fields", []):
                if isinstance(field["type"], list) and "default" in field:
                    first = field["type"][0]
                    assert (field["default"] is None) == (first == "null"), f"{path.name}: {field['name']}"


def test_keys_are_built_from_value_fields() -> None:
    catalog = load_catalog()
    assert catalog.topic("chat.messages").build_key({"tenant_id": "t", "session_id": "s"}) == "t:s"
    # config_updates: the setting name, or tenant/name when the value is tenant-scoped.
    config = catalog.topic("config_updates")
    assert config.key_fields == ["scope_tenant", "name"]
    assert config.build_key({"name": "X", "scope_tenant": None}) == "X"
    assert config.build_key({"name": "X"}) == "X"
    assert config.build_key({"name": "X", "scope_tenant": "t1"}) == "t1/X"


def test_default_paths_and_physical_logical_names() -> None:
    from soma.settings import load_settings

    assert load_catalog() is load_catalog(None, None) is load_catalog(CATALOG_FILE, SCHEMA_DIR)
    catalog = load_catalog()
    prefixed = load_settings(topic_prefix="ci-42.")
    assert catalog.physical_name("tool.results", prefixed) == "ci-42.tool.results"
    assert catalog.logical_name("ci-42.tool.results", prefixed) == "tool.results"
    assert catalog.logical_name("tool.results", prefixed) is None  # another environment's topic
    assert catalog.logical_name("ci-42.__consumer_offsets", prefixed) is None
    with pytest.raises(CatalogError, match=re.escape("unknown topic 'tool.result'")):
        catalog.physical_name("tool.result", prefixed)


def test_unknown_topic_is_a_one_line_error() -> None:
    with pytest.raises(CatalogError, match=re.escape("unknown topic 'chat.mesages': not documented in topics.yaml")):
        load_catalog().topic("chat.mesages")


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = CATALOG_FILE.read_text()
    assert old in text
    path = tmp_path / "topics.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _line_of(path: Path, needle: str) -> int:
    """The line the error must name: the changed line itself (the last one holding `needle`)."""
    lines = path.read_text().splitlines()
    return max(i for i, line in enumerate(lines) if needle in line) + 1


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("value_schema: soma.events.ToolResult", "value_schema: soma.events.ToolOutcome",
         "unknown value_schema 'soma.events.ToolOutcome'"),
        ("cleanup_policy: compact\n", "cleanup_policy: shred\n", "cleanup_policy 'shred' is not one of"),
        ("name: tool.results", "name: tool.requests", "duplicate topic 'tool.requests'"),
        ('key: "{tenant_id}:{memory_key}"', 'key: "{tenant_id}:{memory_id}"', "(no field 'memory_id')"),
        ("partitions: 1\n", "partitions: 0\n", "partitions must be a positive integer"),
        ("replication_factor: 1\n", "replication_factor: true\n", "replication_factor must be a positive integer"),
        ("retention_ms: 86400000", "retention_ms: 1 day", "retention_ms must be a positive integer or null"),
        ("consumers: [auditors]", "consumers: auditors", "consumers must be a non-empty list"),
        ("producers: [streams.segmenter]", "producers: []", "producers must be a non-empty list"),
        ('key: "{tenant_id}:{session_id}"', 'key: "{tenant_id}:{session_id"', "is not a valid template"),
        ('key: "[{scope_tenant}/]{name}"', 'key: "[{scope_tenant}/{name}"', "unbalanced or nested [optional] part"),
        ("name: cog.segments", "name: Cog Segments", "not a valid Kafka topic name"),
    ],
)
def test_mistakes_name_file_line_and_problem(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path, SCHEMA_DIR)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert text.startswith(f"topics.yaml:{_line_of(path, new.strip().splitlines()[0])}: ")


def test_missing_required_topic_is_named(tmp_path: Path) -> None:
    text = CATALOG_FILE.read_text()
    start = text.index("  - name: outbox.audit")
    end = text.index("  - name: dlq")
    path = tmp_path / "topics.yaml"
    path.write_text(text[:start] + text[end:])
    topics_line = text[:text.index("\ntopics:")].count("\n") + 2
    expected = f"topics.yaml:{topics_line}: required topics missing: outbox.audit"
    with pytest.raises(CatalogError, match=re.escape(expected)):
        load_catalog(path, SCHEMA_DIR)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text("topics:\n  - name: x\n    key: [unclosed\n")
    with pytest.raises(CatalogError, match=r"^topics.yaml:\d+: not valid YAML"):
        load_catalog(path, SCHEMA_DIR)


def test_invalid_schema_file_is_named(tmp_path: Path) -> None:
    schemas = tmp_path / "avro"
    shutil.copytree(SCHEMA_DIR, schemas)
    (schemas / "Broken.avsc").write_text('{"type": "record", "name": "Broken", "fields": [{"name": "a"}]}')
    with pytest.raises(CatalogError, match=re.escape("Broken.avsc: not a valid Avro schema")):
        load_catalog(CATALOG_FILE, schemas)
