"""Admin filters, ids and cursors: checked once here for the CLI and the HTTP API alike.

Every check raises `InvalidFilter` naming the field (the HTTP API answers 422 with it).
Timestamps are ISO-8601; one without a zone is taken as UTC. `since` is inclusive and
`until` exclusive, both on the row's `created_at`. A cursor is opaque to callers: the
URL-safe base64 of the last id of the previous page.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from outbox.errors import InvalidFilter
from outbox.models import STATUSES
from soma.contracts.tenants import TENANT_RULE, is_valid_tenant
from soma.times import as_utc

MAX_TENANT_LENGTH = 200  # outbox_events.tenant_id
MAX_ID = 2**63 - 1  # BIGINT
MAX_PAGE = 1000
DEFAULT_PAGE = 100
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{0,64}$"
_CURSOR_PREFIX = "o1:"
_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class OutboxFilter:
    """The rows of one tenant an admin command looks at."""

    tenant: str
    status: str | None = None
    topic: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def describe(self) -> dict[str, str]:
        """The filter as JSON-ready text (for audit records and responses); unset fields omitted."""
        view = {"tenant": self.tenant, "status": self.status, "topic": self.topic}
        view |= {"since": self.since.isoformat() if self.since else None}
        view |= {"until": self.until.isoformat() if self.until else None}
        return {name: value for name, value in view.items() if value is not None}


def check_tenant(value: str | None, field: str = "tenant") -> str:
    if not value:
        raise InvalidFilter(field, "a tenant id is required")
    if len(value) > MAX_TENANT_LENGTH:
        raise InvalidFilter(field, f"longer than {MAX_TENANT_LENGTH} characters")
    if not is_valid_tenant(value):  # the rule every writer follows (soma.contracts.tenants)
        raise InvalidFilter(field, f"not a valid tenant id: {TENANT_RULE}")
    return value


def check_status(value: str | None) -> str | None:
    if value is not None and value not in STATUSES:
        raise InvalidFilter("status", f"{value[:40]!r} is not one of {', '.join(STATUSES)}")
    return value


def check_topic(value: str | None, known_topics: Collection[str]) -> str | None:
    if value is not None and value not in known_topics:
        raise InvalidFilter("topic", f"{value[:80]!r} is not a catalog topic")
    return value


def check_timestamp(field: str, value: datetime | str | None) -> datetime | None:
    """An aware UTC datetime from an ISO-8601 string or datetime (naive = UTC)."""
    if value is None:
        return None
    try:
        return as_utc(value)
    except ValueError as exc:
        raise InvalidFilter(field, str(exc)) from None


def build_filter(
    tenant: str | None,
    *,
    status: str | None = None,
    topic: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    known_topics: Collection[str],
) -> OutboxFilter:
    """A checked filter; the first bad field raises `InvalidFilter` naming it."""
    checked = OutboxFilter(
        tenant=check_tenant(tenant),
        status=check_status(status),
        topic=check_topic(topic, known_topics),
        since=check_timestamp("since", since),
        until=check_timestamp("until", until),
    )
    if checked.since is not None and checked.until is not None and checked.until <= checked.since:
        raise InvalidFilter("until", "must be later than since")
    return checked


def check_limit(value: int) -> int:
    if not 1 <= value <= MAX_PAGE:
        raise InvalidFilter("limit", f"must be between 1 and {MAX_PAGE}")
    return value


def check_ids(ids: Iterable[int], max_count: int, field: str = "ids") -> list[int]:
    """Distinct positive BIGINT ids in the order given; at least one, at most `max_count`."""
    distinct = list(dict.fromkeys(ids))
    if not distinct:
        raise InvalidFilter(field, "at least one id is required")
    bad = next((i for i in distinct if not 1 <= i <= MAX_ID), None)
    if bad is not None:
        raise InvalidFilter(field, f"{bad} is not a valid row id")
    if len(distinct) > max_count:
        raise InvalidFilter(field, f"{len(distinct)} ids, more than the {max_count} one replay may copy")
    return distinct


def parse_ids(texts: Iterable[str], field: str = "--ids") -> list[int]:
    """Ids from command-line words such as ``12,13`` ``14`` (commas or spaces)."""
    ids: list[int] = []
    for text in texts:
        for word in re.split(r"[,\s]+", text.strip()):
            if not word:
                continue
            if not _DIGITS.fullmatch(word):
                raise InvalidFilter(field, f"{word[:40]!r} is not a row id")
            ids.append(int(word))
    return ids


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The id after which the next page starts (0: the first page)."""
    if cursor is None or cursor == "":
        return 0
    if len(cursor) > 64:
        raise InvalidFilter("cursor", "not a cursor from a previous page")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidFilter("cursor", "not a cursor from a previous page") from None
    number = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not _DIGITS.fullmatch(number) or not 0 < int(number) <= MAX_ID:
        raise InvalidFilter("cursor", "not a cursor from a previous page")
    return int(number)
