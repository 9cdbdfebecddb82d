"""The cheap checks fastavro's writer skips, compiled once per schema into plain closures.

fastavro's `schemaless_writer` raises on most mismatches (a string where a long goes, an
unknown enum symbol, a missing field) but silently writes some wrong values: a float in an
int field (truncated), a bool in a numeric field, anything truthy in a boolean field, a
string in an array field (its characters), an int beyond 32 bits in an `int` field (which
other Avro readers then reject), a record field the schema does not have (dropped).
`compile_check` returns a predicate catching exactly those, so encoding can stay fast and
only build the detailed message (`avro_json.find_problem`) when something is wrong.

Union values are left to fastavro, which validates every branch candidate fully, unless a
branch holds records (their unknown fields would otherwise be dropped silently).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

Check = Callable[[Any], bool]

INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
FLOAT_MAX = 3.4028234663852886e38  # largest finite 32-bit float


def _integer(low: int, high: int) -> Check:
    def check(value: Any) -> bool:
        # `type(...) is int` is the fast path; it also excludes bool (a subclass of int).
        if type(value) is not int and (not isinstance(value, int) or isinstance(value, bool)):
            return False
        return low <= value <= high

    return check


def _double(value: Any) -> bool:
    return type(value) is float or (isinstance(value, int | float) and not isinstance(value, bool))


def _float(value: Any) -> bool:
    return _double(value) and (not math.isfinite(value) or abs(value) <= FLOAT_MAX)


def _boolean(value: Any) -> bool:
    return value is True or value is False


def _timestamp(value: Any) -> bool:
    return isinstance(value, datetime) or (isinstance(value, int) and not isinstance(value, bool))


def _fixed(size: int) -> Check:
    def check(value: Any) -> bool:
        return isinstance(value, bytes | bytearray) and len(value) == size

    return check


def _array(items: Check | None) -> Check:
    def check(value: Any) -> bool:
        if not isinstance(value, list | tuple):
            return False
        return items is None or all(items(item) for item in value)

    return check


def _map(values: Check) -> Check:
    def check(value: Any) -> bool:
        return isinstance(value, dict) and all(values(item) for item in value.values())

    return check


def _union(branches: list[Check], nullable: bool) -> Check:
    def check(value: Any) -> bool:
        return (value is None and nullable) or any(branch(value) for branch in branches)

    return check


def _record(names: frozenset[str], fields: tuple[tuple[str, Check], ...]) -> Check:
    def check(value: Any) -> bool:
        if not isinstance(value, dict) or not names.issuperset(value):
            return False
        for name, field_check in fields:  # noqa: SIM110 (a plain loop is measurably cheaper than all())
            # Absent fields are fastavro's business (it writes the default or raises).
            if name in value and not field_check(value[name]):
                return False
        return True

    return check


class _Compiler:
    def __init__(self) -> None:
        self.named: dict[str, Check | None] = {}
        self.schemas: dict[str, Any] = {}

    def compile(self, schema: Any) -> Check | None:
        """A predicate for `schema`, or None when fastavro's own checks suffice."""
        if isinstance(schema, str):
            if schema in self.schemas:
                return self._reference(schema)
            return self._primitive(schema)
        if isinstance(schema, list):
            return self._union(schema)
        if schema.get("logicalType") == "timestamp-millis":
            return _timestamp
        kind = schema["type"]
        if kind == "record":
            return self._named_record(schema)
        if kind in {"enum", "fixed"}:
            self.schemas[schema["name"]] = schema
            self.named[schema["name"]] = _fixed(schema["size"]) if kind == "fixed" else None
            return self.named[schema["name"]]
        if kind == "array":
            return _array(self.compile(schema["items"]))
        if kind == "map":
            values = self.compile(schema["values"])
            return None if values is None else _map(values)
        return self.compile(kind)  # {"type": "long"} and other annotated primitives

    def _primitive(self, kind: str) -> Check | None:
        if kind in INT_RANGE:
            return _integer(*INT_RANGE[kind])
        return {"double": _double, "float": _float, "boolean": _boolean}.get(kind)

    def _reference(self, name: str) -> Check | None:
        if name in self.named:
            return self.named[name]
        # A record still being compiled (a recursive type): look it up when called.
        return lambda value: (self.named[name] or _always)(value)

    def _union(self, branches: list[Any]) -> Check | None:
        checks = [self.compile(branch) for branch in branches if branch != "null"]
        holds_records = any(self._is_record(branch) for branch in branches)
        if not holds_records or any(check is None for check in checks):
            return None  # fastavro picks the branch by validating the value against each
        return _union([check for check in checks if check is not None], "null" in branches)

    def _is_record(self, schema: Any) -> bool:
        if isinstance(schema, str):
            schema = self.schemas.get(schema)
        if isinstance(schema, dict) and schema.get("type") == "array":
            return self._is_record(schema["items"])
        return isinstance(schema, dict) and schema.get("type") == "record"

    def _named_record(self, schema: dict[str, Any]) -> Check:
        name = schema["name"]
        self.schemas[name] = schema
        fields = []
        for field in schema["fields"]:
            check = self.compile(field["type"])
            if check is not None:
                fields.append((field["name"], check))
        compiled = _record(frozenset(f["name"] for f in schema["fields"]), tuple(fields))
        self.named[name] = compiled
        return compiled


def _always(value: Any) -> bool:
    return True


def compile_check(parsed_schema: Any) -> Check:
    """A predicate: does a value pass the checks fastavro's writer would skip? (fastavro's parsed form)."""
    return _Compiler().compile(parsed_schema) or _always
