"""Dead-letter ids and filters: parsing, checks naming the field, matching."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from soma.dlq.errors import InvalidDlqRequest
from soma.dlq.select import MAX_TEXT, DlqFilter, LetterId, build_filter, check_limit, parse_ids

TOPICS = frozenset({"chat.messages", "tool.requests", "dlq"})
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Letter:
    tenant: str = "acme"
    source_topic: str = "chat.messages"
    stream: str = "worker"
    error_type: str = "processing"
    error: str = "ValueError: Tool 'x' unknown"
    timestamp: datetime | None = NOW


def test_an_id_is_the_dlq_position_and_round_trips() -> None:
    assert str(LetterId(2, 41)) == "dlq:2:41"
    assert LetterId.parse(" dlq:2:41 ") == LetterId(2, 41)
    assert sorted([LetterId(1, 5), LetterId(0, 9), LetterId(1, 2)]) == [LetterId(0, 9), LetterId(1, 2), LetterId(1, 5)]


@pytest.mark.parametrize("text", ["", "0:1", "dlq:0", "dlq:-1:0", "dlq:a:1", "dlq:0:1:2", "dlq:0:" + "9" * 19,
                                  "DLQ:0:1", "dlq:0:1\x00"])
def test_a_malformed_id_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidDlqRequest) as caught:
        LetterId.parse(text, "ids")
    assert caught.value.field == "ids"
    assert str(caught.value).startswith("invalid ids: ")
    assert "\n" not in str(caught.value)


def test_ids_from_words_are_distinct_in_order_and_bounded() -> None:
    assert parse_ids(["dlq:0:3,dlq:0:1", "dlq:0:3 dlq:1:0"]) == [LetterId(0, 3), LetterId(0, 1), LetterId(1, 0)]
    with pytest.raises(InvalidDlqRequest, match="at least one"):
        parse_ids([" , "])
    with pytest.raises(InvalidDlqRequest, match="more than the 2"):
        parse_ids(["dlq:0:1,dlq:0:2,dlq:0:3"], max_count=2)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"source_topic": "no.such"}, "source_topic"),
        ({"tenant": ""}, "tenant"),
        ({"tenant": "a\nb"}, "tenant"),
        ({"stream": "x" * (MAX_TEXT + 1)}, "stream"),
        ({"reason": "\x7f"}, "reason"),
        ({"since": "yesterday"}, "since"),
        ({"until": "0001-01-01T00:00:00+23:59"}, "until"),
        ({"since": "2026-01-02", "until": "2026-01-01"}, "until"),
    ],
)
def test_a_bad_filter_names_its_field(options: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidDlqRequest) as caught:
        build_filter(known_topics=TOPICS, **options)
    assert caught.value.field == field


def test_limits() -> None:
    assert check_limit(1) == 1
    assert check_limit(1000) == 1000
    for bad in (0, 1001):
        with pytest.raises(InvalidDlqRequest, match="limit"):
            check_limit(bad)


def test_matching_every_field() -> None:
    letter = Letter()
    assert build_filter(known_topics=TOPICS).matches(letter)
    assert build_filter(tenant="acme", source_topic="chat.messages", stream="worker", error_type="processing",
                        reason="tool 'X'", known_topics=TOPICS).matches(letter)
    for options in ({"tenant": "globex"}, {"source_topic": "tool.requests"}, {"stream": "tools"},
                    {"error_type": "decode"}, {"reason": "KeyError"}):
        assert not build_filter(known_topics=TOPICS, **options).matches(letter), options


def test_time_range_is_since_inclusive_until_exclusive_naive_is_utc() -> None:
    letter = Letter()
    assert build_filter(since="2026-12-01T12:00:00", known_topics=TOPICS).matches(letter)
    assert not build_filter(until="2026-12-01T12:00:00Z", known_topics=TOPICS).matches(letter)
    assert build_filter(until="2026-12-01T13:00:01+01:00", known_topics=TOPICS).matches(letter)
    assert build_filter(since=NOW - timedelta(seconds=1), known_topics=TOPICS).matches(letter)
    assert not build_filter(since=NOW, known_topics=TOPICS).matches(Letter(timestamp=None))
    assert build_filter(known_topics=TOPICS).matches(Letter(timestamp=None))


def test_a_scoped_filter_never_widens() -> None:
    everyone = DlqFilter()
    assert everyone.scoped(frozenset({"acme"})).tenants == frozenset({"acme"})
    asked = build_filter(tenant="globex", known_topics=TOPICS)
    assert asked.scoped(frozenset({"acme"})).tenants == frozenset()
    assert not asked.scoped(frozenset({"acme"})).matches(Letter(tenant="globex"))


def test_describe_omits_unset_fields() -> None:
    flt = build_filter(tenant="acme", reason="boom", since="2026-01-01T00:00:00Z", known_topics=TOPICS)
    assert flt.describe() == {"tenant": "acme", "reason": "boom", "since": "2026-01-01T00:00:00+00:00"}
