"""Admin filters, ids and cursors: every bad value is refused naming its field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from outbox.admin.filters import (
    MAX_ID,
    build_filter,
    check_ids,
    check_limit,
    check_timestamp,
    decode_cursor,
    encode_cursor,
    parse_ids,
)
from outbox.errors import InvalidFilter

TOPICS = frozenset({"chat.messages", "outbox.audit"})


def test_a_full_filter() -> None:
    flt = build_filter(
        "acme", status="failed", topic="chat.messages",
        since="2026-11-22T09:00:00+01:00", until="2026-11-22T10:00:00", known_topics=TOPICS,
    )
    assert flt.since == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    assert flt.until == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # no zone: UTC
    assert flt.describe() == {
        "tenant": "acme", "status": "failed", "topic": "chat.messages",
        "since": "2026-11-22T08:00:00+00:00", "until": "2026-11-22T10:00:00+00:00",
    }


def test_aware_datetimes_are_normalised_to_utc() -> None:
    value = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5)))
    assert check_timestamp("since", value) == datetime(2026, 1, 1, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tenant": None}, "tenant"),
        ({"tenant": ""}, "tenant"),
        ({"tenant": "   "}, "tenant"),
        ({"tenant": "a\x00b"}, "tenant"),
        ({"tenant": " acme"}, "tenant"),
        ({"tenant": "acme\n"}, "tenant"),
        ({"tenant": "ac\tme"}, "tenant"),
        ({"tenant": "x" * 201}, "tenant"),
        ({"status": "sending"}, "status"),
        ({"status": ""}, "status"),
        ({"topic": "no.such.topic"}, "topic"),
        ({"topic": ""}, "topic"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-11-22T10:00:00Z", "until": "2026-11-22T10:00:00Z"}, "until"),
        ({"since": "2026-11-22T11:00:00Z", "until": "2026-11-22T10:00:00Z"}, "until"),
        ({"until": datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-23)))}, "until"),
    ],
)
def test_bad_filters_name_the_field(kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"tenant": "acme", **kwargs}
    with pytest.raises(InvalidFilter) as caught:
        build_filter(known_topics=TOPICS, **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"invalid {field}: ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("last_id", [1, 42, 10**12, MAX_ID])
def test_cursor_round_trip(last_id: int) -> None:
    cursor = encode_cursor(last_id)
    assert str(last_id) not in cursor  # opaque
    assert decode_cursor(cursor) == last_id


def test_no_cursor_is_the_first_page() -> None:
    assert decode_cursor(None) == 0
    assert decode_cursor("") == 0


@pytest.mark.parametrize(
    "cursor",
    [
        "x", "!!!!", "bzE6", "bzE6LTE", "bzE6MA", "MTIz", "bzE6OTIyMzM3MjAzNjg1NDc3NTgwOA",
        "A" * 65, "b\u00e9", "bzE6\u00b2",
    ],
)
def test_bad_cursors_name_the_cursor(cursor: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        decode_cursor(cursor)
    assert caught.value.field == "cursor"


def test_limit_is_bounded() -> None:
    assert check_limit(1) == 1
    assert check_limit(1000) == 1000
    for bad in (0, -1, 1001):
        with pytest.raises(InvalidFilter, match="limit"):
            check_limit(bad)


def test_ids_from_the_command_line() -> None:
    assert parse_ids(["1,2", "3 4", " 5 ,"]) == [1, 2, 3, 4, 5]
    for bad in (["1,x"], ["-3"], ["1.5"], ["\u00b2"], ["9" * 20]):
        with pytest.raises(InvalidFilter) as caught:
            parse_ids(bad)
        assert caught.value.field == "--ids"


def test_ids_are_checked_and_deduplicated() -> None:
    assert check_ids([3, 1, 3], max_count=10) == [3, 1]
    with pytest.raises(InvalidFilter, match="at least one"):
        check_ids([], max_count=10)
    with pytest.raises(InvalidFilter, match="not a valid row id"):
        check_ids([0], max_count=10)
    with pytest.raises(InvalidFilter, match="not a valid row id"):
        check_ids([MAX_ID + 1], max_count=10)
    with pytest.raises(InvalidFilter, match="more than the 2"):
        check_ids([1, 2, 3], max_count=2)
