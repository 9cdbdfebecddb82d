"""The catalog loader: the real topics.yaml is valid, and each kind of mistake names its line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from soma.catalog import CATALOG_FILE, REQUIRED_TOPICS, load_catalog
from soma.errors import CatalogError
from soma.schemas import SCHEMA_DIR

ENVELOPE = ["event_id", "tenant_id", "occurred_at"]


def test_catalog_holds_every_topic_the_architecture_names() -> None:
    catalog = load_catalog()
    assert set(catalog.topics) >= REQUIRED_TOPICS
    assert catalog.topic("config_updates").cleanup_policy == "compact"
    for spec in catalog.topics.values():
        assert spec.description
        assert spec.producers
        assert spec.consumers


def test_every_schema_documents_every_field_and_carries_the_envelope() -> None:
    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        raw = json.loads(path.read_text())
        assert raw["namespace"] == "soma.events", path.name
        assert raw.get("doc"), path.name
        assert [f["name"] for f in raw["fields"][:3]] == ENVELOPE, path.name
        assert raw["fields"][2]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
        undocumented = [f["name"] for f in raw["fields"] if not f.get("doc")]
        assert undocumented == [], path.name


def test_keys_are_built_from_value_fields() -> None:
    catalog = load_catalog()
    assert catalog.topic("chat.messages").build_key({"tenant_id": "t", "session_id": "s"}) == "t:s"
    assert catalog.topic("config_updates").build_key({"name": "X", "scope_tenant": None}) == "/X"


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
    lines = path.read_text().splitlines()
    index = max(i for i, line in enumerate(lines) if needle in line)  # the changed (last) one
    # The entry starts at the "- name:" line at or above the needle.
    while not lines[index].lstrip().startswith("- name:"):
        index -= 1
    return index + 1


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("value_schema: soma.events.ToolResult", "value_schema: soma.events.ToolOutcome",
         "unknown value_schema 'soma.events.ToolOutcome'"),
        ("cleanup_policy: compact\n", "cleanup_policy: shred\n", "cleanup_policy 'shred' is not one of"),
        ("name: tool.results", "name: tool.requests", "duplicate topic 'tool.requests'"),
        ('key: "{tenant_id}:{memory_key}"', 'key: "{tenant_id}:{memory_id}"', "(no field 'memory_id')"),
        ("partitions: 1\n", "partitions: 0\n", "partitions must be a positive integer"),
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
    with pytest.raises(CatalogError, match=re.escape("required topics missing: outbox.audit")):
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
