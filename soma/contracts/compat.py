"""The compatibility gate: the current schemas must read what every released version wrote (BACKWARD).

Released versions live in `schemas/history/<FullName>/v<N>.avsc` of the catalog directory. fastavro has no
compatibility checker, so `check_compatibility` walks reader (current) and writer (each
release) side by side per the Avro specification's schema-resolution rules and names the
schema and field that break; `release` records the current version as the next one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soma.contracts.schemas import SchemaSet

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
    """Every named type of one schema (by short and full name), so references resolve anywhere."""

    def __init__(self, schema: Any) -> None:
        self.types: dict[str, Any] = {}
        self._collect(schema, None)

    def _collect(self, schema: Any, namespace: str | None) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self._collect(branch, namespace)
        elif isinstance(schema, dict):
            if schema.get("type") in {"record", "enum", "fixed"}:
                name = str(schema["name"])
                namespace = name.rpartition(".")[0] or schema.get("namespace") or namespace
                short = name.rpartition(".")[2]
                self.types[short] = schema
                self.types[f"{namespace}.{short}" if namespace else short] = schema
            for field in schema.get("fields", []):
                self._collect(field["type"], namespace)
            for nested in ("items", "values"):
                if nested in schema:
                    self._collect(schema[nested], namespace)
            if isinstance(schema.get("type"), dict | list):
                self._collect(schema["type"], namespace)

    def resolve(self, schema: Any) -> Any:
        return self.types.get(schema, schema) if isinstance(schema, str) else schema


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


def _same_name(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    """Named types match by unqualified name, or by one of the reader's aliases (specification)."""
    short = str(writer["name"]).rsplit(".", 1)[-1]
    names = [reader["name"], *reader.get("aliases", [])]
    return any(str(name).rsplit(".", 1)[-1] == short for name in names)


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
    if rk in {"record", "enum", "fixed"} and not _same_name(reader, writer):
        return f"{where}: {rk} renamed from {writer['name']} to {reader['name']} (without an alias)"
    if rk == "record":
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


def check_compatibility(schemas: SchemaSet) -> list[Breakage]:
    """Every way a current schema fails to read one of its released versions (empty: all BACKWARD)."""
    found = []
    for name, current in schemas.current.items():
        for released in schemas.history.get(name, []):
            problem = incompatibility(current.raw, released.raw, "", _Names(current.raw), _Names(released.raw))
            if problem:
                found.append(Breakage(name, released.version or 0, problem))
    return found


check = check_compatibility  # the short name the CLI and tests use


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
