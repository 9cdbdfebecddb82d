"""Which dead letters: their ids, the filters of a listing or a redrive, checked once for CLI and HTTP.

A dead letter is named by its position in the `dlq` topic: ``dlq:<partition>:<offset>``. The
position is unique for the topic's retention, and reading it back is one seek. (Its `event_id`
is shown too; it is derived from the source position and the stream, so a record dead-lettered
twice by the same stream keeps its event id while each copy has its own position.)

Every check raises `InvalidDlqRequest` naming the field. Times are ISO-8601 (no zone = UTC):
`since` inclusive, `until` exclusive, on the time the record was dead-lettered (its `dlq` record
timestamp). `reason` is a case-insensitive substring of the error text.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from soma.dlq.errors import InvalidDlqRequest
from soma.times import as_utc

ID_PATTERN = r"^dlq:[0-9]{1,9}:[0-9]{1,18}$"
_ID = re.compile(ID_PATTERN)
MAX_LIMIT = 1000  # dead letters one listing returns
DEFAULT_LIMIT = 100
MAX_REDRIVE = 1000  # dead letters one redrive sends back
MAX_TEXT = 200  # tenant, stream, error type, reason
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, order=True)
class LetterId:
    """A dead letter's position in the `dlq` topic."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"dlq:{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str, field: str = "id") -> LetterId:
        word = text.strip()
        if not _ID.fullmatch(word):
            raise InvalidDlqRequest(field, f"{word[:40]!r} is not a dead-letter id (dlq:<partition>:<offset>)")
        _, partition, offset = word.split(":")
        return cls(int(partition), int(offset))


def parse_ids(texts: Iterable[str], field: str = "ids", max_count: int = MAX_REDRIVE) -> list[LetterId]:
    """Distinct ids, in the order given, from words such as ``dlq:0:12,dlq:0:13`` ``dlq:1:4``."""
    ids: list[LetterId] = []
    for text in texts:
        ids += [LetterId.parse(word, field) for word in re.split(r"[,\s]+", text.strip()) if word]
    distinct = list(dict.fromkeys(ids))
    if not distinct:
        raise InvalidDlqRequest(field, "at least one dead-letter id is required")
    if len(distinct) > max_count:
        raise InvalidDlqRequest(field, f"{len(distinct)} ids, more than the {max_count} one request may name")
    return distinct


class Matchable(Protocol):
    """What a filter looks at (a `soma.dlq.letters.DeadLetter`)."""

    @property
    def tenant(self) -> str: ...
    @property
    def source_topic(self) -> str: ...
    @property
    def stream(self) -> str: ...
    @property
    def error_type(self) -> str: ...
    @property
    def error(self) -> str: ...
    @property
    def timestamp(self) -> datetime | None: ...


@dataclass(frozen=True)
class DlqFilter:
    """The dead letters a listing or a redrive looks at. `tenants` None: every tenant."""

    tenants: frozenset[str] | None = None
    source_topic: str | None = None
    stream: str | None = None
    error_type: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: Matchable) -> bool:
        if self.tenants is not None and letter.tenant not in self.tenants:
            return False
        if self.source_topic is not None and letter.source_topic != self.source_topic:
            return False
        if self.stream is not None and letter.stream != self.stream:
            return False
        if self.error_type is not None and letter.error_type != self.error_type:
            return False
        if self.reason is not None and self.reason.casefold() not in letter.error.casefold():
            return False
        return self._in_time(letter.timestamp)

    def _in_time(self, when: datetime | None) -> bool:
        if when is None:
            return self.since is None and self.until is None
        return (self.since is None or when >= self.since) and (self.until is None or when < self.until)

    def scoped(self, tenants: frozenset[str]) -> DlqFilter:
        """This filter narrowed to `tenants` (a tenant-scoped caller sees only its own)."""
        narrowed = tenants if self.tenants is None else self.tenants & tenants
        return DlqFilter(narrowed, self.source_topic, self.stream, self.error_type, self.reason, self.since, self.until)

    def describe(self) -> dict[str, str]:
        """The filter as JSON-ready text (for audit records and responses); unset fields omitted."""
        view = {
            "tenant": ",".join(sorted(self.tenants)) if self.tenants is not None else None,
            "source_topic": self.source_topic, "stream": self.stream, "error_type": self.error_type,
            "reason": self.reason,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {name: value for name, value in view.items() if value is not None}


def check_text(field: str, value: str | None) -> str | None:
    """A filter word: not empty, at most MAX_TEXT characters, no control characters."""
    if value is None:
        return None
    if not value:
        raise InvalidDlqRequest(field, "must not be empty")
    if len(value) > MAX_TEXT:
        raise InvalidDlqRequest(field, f"longer than {MAX_TEXT} characters")
    if _CONTROL.search(value):
        raise InvalidDlqRequest(field, "control characters are not allowed")
    return value


def check_time(field: str, value: datetime | str | None) -> datetime | None:
    """An aware UTC datetime from an ISO-8601 string or datetime (naive = UTC)."""
    if value is None:
        return None
    try:
        return as_utc(value)
    except ValueError as exc:
        raise InvalidDlqRequest(field, str(exc)) from None


def check_limit(value: int, field: str = "limit") -> int:
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidDlqRequest(field, f"must be between 1 and {MAX_LIMIT}")
    return value


def build_filter(
    *,
    tenant: str | None = None,
    source_topic: str | None = None,
    stream: str | None = None,
    error_type: str | None = None,
    reason: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    known_topics: Collection[str],
) -> DlqFilter:
    """A checked filter; the first bad field raises `InvalidDlqRequest` naming it."""
    if source_topic is not None and source_topic not in known_topics:
        raise InvalidDlqRequest("source_topic", f"{source_topic[:80]!r} is not a catalog topic")
    checked_tenant = check_text("tenant", tenant)
    flt = DlqFilter(
        tenants=frozenset({checked_tenant}) if checked_tenant is not None else None,
        source_topic=source_topic,
        stream=check_text("stream", stream),
        error_type=check_text("error_type", error_type),
        reason=check_text("reason", reason),
        since=check_time("since", since),
        until=check_time("until", until),
    )
    if flt.since is not None and flt.until is not None and flt.until <= flt.since:
        raise InvalidDlqRequest("until", "must be later than since")
    return flt
