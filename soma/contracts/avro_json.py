"""Walks an Avro schema beside a value: precise validation messages and JSON <-> Avro values.

fastavro's writer tells *that* a value does not fit, not *where*; `find_problem` says which
field and why, in one line. `from_json` / `to_json` map the JSON a person types or reads
(ISO-8601 timestamps, base64 bytes, plain unions) to what the Avro writer takes and back.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime
from typing import Any

Schema = Any  # a JSON-decoded Avro schema node: str, list (union) or dict

_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_FLOAT_MAX = 3.4028234663852886e38  # largest finite 32-bit float


def _named(schema: Schema, names: dict[str, Schema]) -> Schema:
    """Resolve a reference to a named type; remember named types as they are defined."""
    if isinstance(schema, str):
        return names.get(schema, names.get(f"soma.events.{schema}", schema))
    if isinstance(schema, dict) and schema.get("type") in {"record", "enum", "fixed"}:
        names[schema["name"]] = schema
        namespace = schema.get("namespace")
        if namespace:
            names[f"{namespace}.{schema['name']}"] = schema
    return schema


def _type_label(schema: Schema) -> str:
    if isinstance(schema, list):
        return " or ".join(_type_label(branch) for branch in schema)
    if isinstance(schema, dict):
        return str(schema.get("logicalType") or schema.get("name") or schema.get("type"))
    return str(schema)


def _timestamp_ok(value: Any) -> bool:
    return isinstance(value, datetime) or (isinstance(value, int) and not isinstance(value, bool))


def find_problem(schema: Schema, value: Any, *, strict: bool = False, path: str = "",
                 names: dict[str, Schema] | None = None) -> str | None:
    """The first way `value` does not fit `schema`, as "field 'a.b': ...", or None when it fits.

    `strict` also rejects record fields the schema does not have (typos would be dropped silently).
    """
    names = {} if names is None else names
    schema = _named(schema, names)
    where = f"field '{path}'" if path else "value"
    if isinstance(schema, list):
        if any(find_problem(branch, value, path=path, names=names, strict=strict) is None for branch in schema):
            return None
        if value is None:
            return f"{where}: must not be null"
        # One non-null branch: its own message is the precise one.
        branches = [b for b in schema if b != "null"]
        if len(branches) == 1:
            return find_problem(branches[0], value, path=path, names=names, strict=strict)
        return f"{where}: {value!r} is not a {_type_label(schema)}"
    kind = schema.get("type") if isinstance(schema, dict) else schema
    if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
        if _timestamp_ok(value):
            return None
        return f"{where}: expected a timestamp (ISO-8601, datetime or epoch millis), got {value!r}"
    if kind == "record":
        if not isinstance(value, dict):
            return f"{where}: expected an object, got {type(value).__name__}"
        fields = schema["fields"]
        if strict:
            known = {f["name"] for f in fields}
            extra = sorted(set(value) - known)
            if extra:
                prefix = f"{path}." if path else ""
                return f"field '{prefix}{extra[0]}': not a field of {schema.get('name')}"
        for f in fields:
            child = f"{path}.{f['name']}" if path else f["name"]
            if f["name"] not in value:
                if "default" in f:
                    continue
                return f"field '{child}': missing (required, no default)"
            problem = find_problem(f["type"], value[f["name"]], strict=strict, path=child, names=names)
            if problem:
                return problem
        return None
    if kind == "enum":
        if value in schema["symbols"]:
            return None
        return f"{where}: {value!r} is not one of {', '.join(schema['symbols'])}"
    if kind == "array":
        if not isinstance(value, list | tuple):
            return f"{where}: expected an array, got {type(value).__name__}"
        for index, item in enumerate(value):
            problem = find_problem(schema["items"], item, strict=strict, path=f"{path}[{index}]", names=names)
            if problem:
                return problem
        return None
    if kind == "map":
        if not isinstance(value, dict):
            return f"{where}: expected an object (map), got {type(value).__name__}"
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where}: map keys must be strings, got {key!r}"
            problem = find_problem(schema["values"], item, strict=strict, path=f"{path}[{key!r}]", names=names)
            if problem:
                return problem
        return None
    if kind == "fixed" and isinstance(value, bytes | bytearray) and len(value) != schema["size"]:
        return f"{where}: expected {schema['size']} bytes, got {len(value)}"
    return _primitive_problem(str(kind), value, where)


def _primitive_problem(kind: str, value: Any, where: str) -> str | None:
    ok: bool
    if kind == "null":
        ok = value is None
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind in _INT_RANGE:
        low, high = _INT_RANGE[kind]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    elif kind in {"float", "double"}:
        # float: a finite double beyond 32-bit range would silently be written as inf.
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        ok = numeric and (kind == "double" or not math.isfinite(value) or abs(value) <= _FLOAT_MAX)
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind in {"bytes", "fixed"}:
        ok = isinstance(value, bytes | bytearray)
    else:
        return f"{where}: unsupported schema type {kind!r}"
    return None if ok else f"{where}: expected {kind}, got {value!r}"


def from_json(schema: Schema, value: Any, *, path: str, names: dict[str, Schema] | None = None) -> Any:
    """JSON-typed `value` to Avro-ready: ISO-8601 strings to datetimes, base64 strings to bytes."""
    names = {} if names is None else names
    schema = _named(schema, names)
    if isinstance(schema, list):
        if value is None:
            return None
        for branch in schema:
            if branch == "null":
                continue
            converted = from_json(branch, value, path=path, names=names)
            if find_problem(branch, converted, names=names) is None:
                return converted
        return value
    if isinstance(schema, dict):
        if schema.get("logicalType") == "timestamp-millis" and isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value  # find_problem reports it, naming the field
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        kind = schema.get("type")
        if kind == "record" and isinstance(value, dict):
            types = {f["name"]: f["type"] for f in schema["fields"]}
            return {
                k: from_json(types[k], v, path=f"{path}.{k}" if path else k, names=names) if k in types else v
                for k, v in value.items()
            }
        if kind == "array" and isinstance(value, list):
            return [from_json(schema["items"], item, path=path, names=names) for item in value]
        if kind == "map" and isinstance(value, dict):
            return {k: from_json(schema["values"], v, path=path, names=names) for k, v in value.items()}
        schema = kind
    if schema in {"bytes", "fixed"} and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value
    if schema in {"float", "double"} and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def to_json(value: Any) -> Any:
    """A decoded Avro value as JSON-friendly data (datetimes ISO-8601 UTC, bytes base64)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    return value
