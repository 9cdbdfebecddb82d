"""The cheap pre-encode checks: they refuse exactly what fastavro would write wrongly, and agree with the
precise validator (so every refusal gets a message naming the field)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

import pytest
from fastavro.schema import parse_schema

from soma.contracts.avro_json import find_problem
from soma.contracts.fastcheck import compile_check

SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Node", "namespace": "t",
    "fields": [
        {"name": "i", "type": "int"},
        {"name": "f", "type": "float", "default": 0.0},
        {"name": "b", "type": "boolean", "default": False},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}, "default": 0},
        {"name": "h", "type": {"type": "fixed", "name": "Hash", "size": 4}, "default": "\u0000\u0000\u0000\u0000"},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
        {"name": "scores", "type": {"type": "map", "values": "long"}, "default": {}},
        {"name": "children", "type": ["null", {"type": "array", "items": "Node"}], "default": None},
        {"name": "choice", "type": ["null", "string", "long"], "default": None},
    ],
}
CHECK = compile_check(parse_schema(SCHEMA, _write_hint=False))


class Level(IntEnum):
    LOW = 1


def _node(**change: Any) -> dict[str, Any]:
    return {"i": 1, **change}


@pytest.mark.parametrize(
    "value",
    [
        _node(), _node(i=Level.LOW), _node(f=1.5, b=True, ts=datetime.now(UTC), h=b"abcd"),
        _node(tags=("a", "b"), scores={"x": 2**40}, ts=1_700_000_000_000),
        _node(children=[_node(children=[_node(i=3)])]), _node(f=float("inf")), _node(choice=7),
    ],
)
def test_good_values_pass(value: dict[str, Any]) -> None:
    assert CHECK(value)
    assert find_problem(SCHEMA, value, strict=True) is None


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (_node(i=1.0), "i"), (_node(i=True), "i"), (_node(i=2**31), "i"), (_node(f=1e39), "f"),
        (_node(b=1), "b"), (_node(b="no"), "b"), (_node(ts=1.5), "ts"), (_node(h=b"abc"), "h"),
        (_node(tags="ab"), "tags"), (_node(scores={"x": 1.5}), "scores['x']"), (_node(scores=[]), "scores"),
        (_node(extra=1), "extra"), (_node(children=[_node(i=2.5)]), "children[0].i"),
        (_node(children=[_node(children=[{"i": 1, "typo": 2}])]), "children[0].children[0].typo"),
    ],
)
def test_values_fastavro_would_write_wrongly_fail_and_the_validator_names_the_field(
    value: dict[str, Any], field: str
) -> None:
    assert not CHECK(value)
    problem = find_problem(SCHEMA, value, strict=True)
    assert problem is not None
    assert problem.startswith(f"field '{field}'"), problem


def test_unions_without_records_are_left_to_fastavro() -> None:
    # fastavro validates each union branch itself; the cheap check does not repeat that work.
    assert CHECK(_node(choice=1.5))
    assert find_problem(SCHEMA, _node(choice=1.5)) is not None
