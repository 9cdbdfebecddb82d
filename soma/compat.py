"""The compatibility gate: the current schemas must read what every released version wrote (BACKWARD).

Released versions live in `schemas/avro/history/<FullName>/v<N>.avsc`. `check` follows the
Avro specification's schema-resolution rules (reader = current, writer = each release) and
names the schema and field that break; `release` records the current version as the next one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soma.schemas import SchemaSet

# Writer type -> reader types that can read it (Avro "promotion" rules).
PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "double": {"double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
    "boolean": {"boolean"},
    "null": {"null"},
}


@dataclass(frozen=True)
class Breakage:
    schema: str
    version: int
    problem: str

    def __str__(self) -> str:
        return f"{self.schema}: cannot read v{self.version} data: {self.problem}"


class _Names:
    """Named types met while walking one schema, so references resolve."""

    def __init__(self) -> None:
        self.types: dict[str, Any] = {}

    def resolve(self, schema: Any, namespace: str | None = None) -> Any:
        if isinstance(schema, str):
            return self.types.get(schema) or self.types.get(f"{namespace}.{schema}") or schema
        if isinstance(schema, dict) and schema.get("type") in {"record", "enum", "fixed"}:
            self.types[schema["name"]] = schema
            self.types[f"{schema.get('namespace', namespace)}.{schema['name']}"] = schema
        return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"]) if isinstance(schema["type"], str) else _kind(schema["type"])
    return str(schema)


def _label(schema: Any) -> str:
    if isinstance(schema, dict) and schema.get("name"):
        return str(schema["name"])
    return _kind(schema)


def _unwrap(schema: Any) -> Any:
    """`{"type": "long", "logicalType": ...}` reads like `"long"`."""
    if isinstance(schema, dict) and _kind(schema) not in {"record", "enum", "array", "map", "fixed"}:
        return schema["type"]
    return schema


def _at(path: str) -> str:
    return f"field '{path}'" if path else "the record"


def incompatibility(reader: Any, writer: Any, path: str, rn: _Names, wn: _Names) -> str | None:
    """Why data written with `writer` cannot be read with `reader` (at dotted `path`), or None when it can."""
    reader, writer = _unwrap(rn.resolve(reader)), _unwrap(wn.resolve(writer))
    where = _at(path)
    rk, wk = _kind(reader), _kind(writer)
    if wk == "union":
        for branch in writer:
            problem = incompatibility(reader, branch, path, rn, wn)
            if problem:
                return problem
        return None
    if rk == "union":
        if any(incompatibility(branch, writer, path, rn, wn) is None for branch in reader):
            return None
        same_kind = [branch for branch in reader if _kind(rn.resolve(branch)) == wk]
        if len(same_kind) == 1:  # the branch that was meant: its own problem is the precise one
            return incompatibility(same_kind[0], writer, path, rn, wn)
        return f"{where}: {_label(writer)} is not among the reader's union {[_label(b) for b in reader]}"
    if rk in PROMOTIONS or wk in PROMOTIONS:
        if rk in PROMOTIONS.get(wk, set()):
            return None
        return f"{where}: {wk} data cannot be read as {rk}"
    if rk != wk:
        return f"{where}: {wk} data cannot be read as {rk}"
    if rk == "record":
        if reader["name"].split(".")[-1] != writer["name"].split(".")[-1]:
            return f"{where}: record renamed from {writer['name']} to {reader['name']}"
        written = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            name = field["name"]
            source = written.get(name) or next(
                (written[a] for a in field.get("aliases", []) if a in written), None
            )
            child = f"{path}.{name}" if path else name
            if source is None:
                if "default" not in field:
                    return f"{_at(child)} was added without a default"
                continue
            problem = incompatibility(field["type"], source["type"], child, rn, wn)
            if problem:
                return problem
        return None
    if rk == "enum":
        lost = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if lost and "default" not in reader:
            return f"{where}: enum {reader['name']} lost symbol(s) {', '.join(lost)} (and has no default)"
        return None
    if rk == "array":
        return incompatibility(reader["items"], writer["items"], f"{path}[]", rn, wn)
    if rk == "map":
        return incompatibility(reader["values"], writer["values"], f"{path}{{}}", rn, wn)
    if rk == "fixed" and reader.get("size") != writer.get("size"):
        return f"{where}: fixed size changed from {writer.get('size')} to {reader.get('size')}"
    return None


def check(schemas: SchemaSet) -> list[Breakage]:
    """Every way a current schema fails to read one of its released versions."""
    found = []
    for name, current in schemas.current.items():
        for released in schemas.history.get(name, []):
            problem = incompatibility(current.raw, released.raw, "", _Names(), _Names())
            if problem:
                found.append(Breakage(name, released.version or 0, problem))
    return found


def release(schemas: SchemaSet) -> list[Path]:
    """Write the current version of each changed schema as its next `vN.avsc`; returns the new files."""
    written = []
    for name, current in schemas.current.items():
        history = schemas.history.get(name, [])
        if history and history[-1].canonical == current.canonical:
            continue
        version = (history[-1].version or 0) + 1 if history else 1
        path = schemas.directory / "history" / name / f"v{version}.avsc"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current.raw, indent=2) + "\n")
        written.append(path)
    return written
