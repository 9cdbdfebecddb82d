"""User JSON is parsed within a size and a depth limit, without recursion, with one line naming the field."""

from __future__ import annotations

import json
import time

import pytest

from soma.contracts.bounded_json import (
    MAX_DEPTH,
    JsonLimitExceeded,
    check_json_limits,
    loads_bounded,
    nesting_depth,
)


def test_fifty_thousand_brackets_are_refused_as_too_deep_not_a_recursion_error() -> None:
    hostile = "[" * 50_000 + "]" * 50_000
    expected = r"^arguments_json: JSON too deeply nested \(50000 levels; the limit is 64\)$"
    with pytest.raises(JsonLimitExceeded, match=expected):
        loads_bounded(hostile, "arguments_json")
    with pytest.raises(JsonLimitExceeded, match="too deeply nested"):
        loads_bounded('{"a":' * 50_000 + "1" + "}" * 50_000, "payload_json")


def test_nesting_up_to_the_limit_parses() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert nesting_depth(text) == MAX_DEPTH
    value = loads_bounded(text, "f")
    for _ in range(MAX_DEPTH - 1):
        value = value[0]
    assert value == []
    with pytest.raises(JsonLimitExceeded):
        loads_bounded("[" + text + "]", "f")


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"s": "[" * 10_000, "t": 'say "[[[" \\ [', "n": [[1]]})
    assert nesting_depth(text) == 3
    assert loads_bounded(text, "f")["s"] == "[" * 10_000


def test_size_is_counted_in_utf8_bytes() -> None:
    cjk = json.dumps("語" * 400, ensure_ascii=False)  # 402 characters, 1,202 bytes
    assert loads_bounded(cjk, "f", max_bytes=1_202) == "語" * 400
    with pytest.raises(JsonLimitExceeded, match=r"^f: JSON of 1202 bytes exceeds the limit of 1000 bytes$"):
        loads_bounded(cjk, "f", max_bytes=1_000)
    with pytest.raises(JsonLimitExceeded, match="exceeds the limit"):
        loads_bounded(b"[" + b"1," * 600 + b"1]", "f", max_bytes=1_000)


def test_bytes_that_are_not_utf8_are_refused_with_the_position() -> None:
    with pytest.raises(JsonLimitExceeded, match=r"^f: JSON is not UTF-8 \(invalid start byte at byte 2\)$"):
        check_json_limits(b'"a\xff"', "f")


def test_invalid_json_within_the_limits_is_still_a_value_error() -> None:
    with pytest.raises(ValueError, match="Expecting property name") as raised:
        loads_bounded("{not json", "f")
    assert not isinstance(raised.value, JsonLimitExceeded)
    with pytest.raises(ValueError, match="limit"):
        loads_bounded("1" * 5_000, "f")  # past Python's int digit limit


def test_a_megabyte_is_checked_quickly() -> None:
    text = json.dumps([{"k": "[" * 50, "v": list(range(20))} for _ in range(6_000)])
    assert len(text) < 1_000_000
    started = time.perf_counter()
    check_json_limits(text, "f")
    assert time.perf_counter() - started < 2.0  # generous: a busy 2-core machine


def test_closing_brackets_first_cannot_hide_a_deep_nesting() -> None:
    with pytest.raises(JsonLimitExceeded, match="too deeply nested"):
        loads_bounded("]" * 100 + "[" * 1_000, "f")
    with pytest.raises(ValueError, match="Expecting value"):  # the parser stops at the first "]": no recursion
        loads_bounded("]" * 1_000 + "[" * 1_000, "f")
