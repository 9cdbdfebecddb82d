"""The BACKWARD gate: compatible changes pass, breaking ones are named down to the field."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from soma.contracts.catalog import load_catalog
from soma.contracts.compat import check, check_compatibility, release
from soma.contracts.schemas import SCHEMA_DIR, SchemaSet
from soma.contracts.topic_docs import render_markdown

REPO = Path(__file__).resolve().parents[3]


def _with_change(tmp_path: Path, name: str, change: Callable[[dict], None]) -> SchemaSet:
    schemas = tmp_path / "avro"
    shutil.copytree(SCHEMA_DIR, schemas)
    raw = json.loads((schemas / f"{name}.avsc").read_text())
    change(raw)
    (schemas / f"{name}.avsc").write_text(json.dumps(raw))
    return SchemaSet(schemas)


def _field(raw: dict, name: str) -> dict:
    return next(f for f in raw["fields"] if f["name"] == name)


def test_the_committed_schemas_pass_and_every_schema_is_released() -> None:
    schemas = SchemaSet()
    assert check(schemas) == []
    assert all(schemas.history[name] for name in schemas.current), "run `soma schemas release`"


def test_adding_a_field_with_a_default_passes(tmp_path: Path) -> None:
    def add(raw: dict) -> None:
        raw["fields"].append({"name": "priority", "type": "int", "default": 0, "doc": "new"})

    assert check(_with_change(tmp_path, "ChatMessage", add)) == []


def test_promotion_and_removal_pass(tmp_path: Path) -> None:
    def change(raw: dict) -> None:
        _field(raw, "timeout_ms")["type"] = "long"  # int -> long is a promotion
        raw["fields"] = [f for f in raw["fields"] if f["name"] != "requested_by"]

    assert check(_with_change(tmp_path, "ToolRequest", change)) == []


@pytest.mark.parametrize(
    ("name", "change", "problem"),
    [
        ("ChatMessage", lambda raw: raw["fields"].append({"name": "priority", "type": "int", "doc": "x"}),
         "field 'priority' was added without a default"),
        ("ChatMessage", lambda raw: _field(raw, "sequence").update(type="int"),
         "field 'sequence': long data cannot be read as int"),
        ("ToolResult", lambda raw: _field(raw, "status")["type"].update(symbols=["ok", "error"]),
         "field 'status': enum ToolStatus lost symbol(s) timeout (and has no default)"),
        ("ChatMessage",
         lambda raw: _field(raw, "tool_calls")["type"][1]["items"]["fields"].append(
             {"name": "budget", "type": "double", "doc": "x"}),
         "field 'tool_calls[].budget' was added without a default"),
        ("ToolResult", lambda raw: _field(raw, "output").update(type="string", default=""),
         "field 'output': null data cannot be read as string"),
        ("ToolResult", lambda raw: _field(raw, "status")["type"].update(name="Outcome"),
         "field 'status': enum renamed from ToolStatus to Outcome (without an alias)"),
        ("PredictorUpdate", lambda raw: _field(raw, "vector")["type"][1].update(items="float"),
         "field 'vector[]': double data cannot be read as float"),
        ("GlobalFrame", lambda raw: _field(raw, "weights")["type"].update(values="string"),
         "field 'weights{}': double data cannot be read as string"),
    ],
)
def test_breaking_changes_name_schema_and_field(tmp_path: Path, name: str, change: Callable, problem: str) -> None:
    breakages = check(_with_change(tmp_path, name, change))
    assert [str(b) for b in breakages] == [f"soma.events.{name}: cannot read v1 data: {problem}"]


def test_renames_with_an_alias_and_enum_defaults_pass(tmp_path: Path) -> None:
    def change(raw: dict) -> None:
        status = _field(raw, "status")["type"]
        status.update(name="Outcome", aliases=["ToolStatus"], symbols=["ok", "error"], default="error")

    assert check_compatibility(_with_change(tmp_path, "ToolResult", change)) == []


def test_release_writes_the_next_version_only_when_changed(tmp_path: Path) -> None:
    def add(raw: dict) -> None:
        raw["fields"].append({"name": "priority", "type": "int", "default": 0, "doc": "new"})

    schemas = _with_change(tmp_path, "ChatMessage", add)
    written = release(schemas)
    assert [p.relative_to(schemas.directory).as_posix() for p in written] == [
        "history/soma.events.ChatMessage/v2.avsc"
    ]
    assert release(SchemaSet(schemas.directory)) == []


def test_docs_topics_md_is_fresh() -> None:
    committed = (REPO / "docs" / "topics.md").read_text()
    assert committed == render_markdown(load_catalog()), "docs/topics.md is stale: run `soma topics docs`"


def test_schemas_check_command_passes_on_the_committed_schemas() -> None:
    import sys

    from soma.ops.processes import run_bounded

    result = run_bounded([sys.executable, "-m", "soma", "schemas", "check"], timeout_s=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "read all" in result.stdout
