"""One dead letter: the `dlq` record decoded with the codec, and views of it for people and JSON.

The DeadLetter schema is read through the codec, so every released version decodes (a newer
one with a `truncated` flag too; absent, the flag is false). The original value is decoded with
its source topic's schema when it decodes; otherwise the view says ``not decodable: <reason>``
and shows a hex and base64 preview of the bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from soma.contracts.codec import Codec
from soma.contracts.events import HEADER_TENANT
from soma.dlq.select import LetterId
from soma.errors import SomaError

DLQ_TOPIC = "dlq"
UNDECODABLE = "undecodable-dead-letter"  # error_type of a `dlq` record that is not a DeadLetter
PREVIEW_HEX_BYTES = 64
PREVIEW_BASE64_BYTES = 3072
SUMMARY_ERROR_CHARS = 300


@dataclass(frozen=True)
class DeadLetter:
    """A `dlq` record: where it is, what failed, and the original record's bytes."""

    id: LetterId
    timestamp: datetime | None  # when it was dead-lettered (the `dlq` record's timestamp)
    event_id: str
    tenant: str
    stream: str
    source_topic: str  # catalog name
    source_partition: int
    source_offset: int
    error_type: str
    error: str
    original_key: bytes | None = field(default=None, repr=False)
    original_value: bytes | None = field(default=None, repr=False)
    headers: dict[str, bytes] = field(default_factory=dict, repr=False)
    truncated: bool = False
    occurred_at: datetime | None = None

    @property
    def source(self) -> str:
        return f"{self.source_topic}[{self.source_partition}]@{self.source_offset}"

    def not_redrivable(self, known_topics: frozenset[str]) -> str | None:
        """Why this dead letter cannot be sent back to its source topic, or None."""
        if self.error_type == UNDECODABLE:
            return "the dead-letter record itself does not decode"
        if self.truncated:
            return "its original value was truncated when it was dead-lettered"
        if self.source_topic not in known_topics:
            return f"its source topic {self.source_topic[:80]!r} is not a catalog topic"
        return None


def _millis(value: int | None) -> datetime | None:
    if value is None or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def from_record(
    codec: Codec, letter_id: LetterId, raw: bytes, timestamp_ms: int | None, headers: dict[str, bytes]
) -> DeadLetter:
    """The dead letter in a `dlq` record; one that does not decode is kept, marked UNDECODABLE."""
    when = _millis(timestamp_ms)
    try:
        value = codec.decode(DLQ_TOPIC, raw)
    except SomaError as exc:
        tenant = headers.get(HEADER_TENANT, b"").decode(errors="replace") or "unknown"
        return DeadLetter(letter_id, when, "", tenant, "", "", -1, -1, UNDECODABLE, str(exc))
    occurred = value.get("occurred_at")
    return DeadLetter(
        id=letter_id, timestamp=when, event_id=str(value["event_id"]), tenant=str(value["tenant_id"]),
        stream=str(value["stream"]), source_topic=str(value["source_topic"]),
        source_partition=int(value["source_partition"]), source_offset=int(value["source_offset"]),
        error_type=str(value["error_type"]), error=str(value["error"]),
        original_key=value.get("original_key"), original_value=value.get("original_value"),
        headers=dict(value.get("headers") or {}), truncated=bool(value.get("truncated", False)),
        occurred_at=occurred if isinstance(occurred, datetime) else None,
    )


def text_or_base64(data: bytes | None) -> str | None:
    """Bytes as text when they are printable UTF-8, else ``base64:<...>``."""
    if data is None:
        return None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        return text
    return "base64:" + base64.b64encode(data).decode()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") if value is not None else None


def summary(letter: DeadLetter) -> dict[str, Any]:
    """One line of a listing (JSON-ready)."""
    return {
        "id": str(letter.id), "event_id": letter.event_id, "tenant": letter.tenant,
        "dead_lettered_at": _iso(letter.timestamp), "stream": letter.stream,
        "source_topic": letter.source_topic, "source_partition": letter.source_partition,
        "source_offset": letter.source_offset, "error_type": letter.error_type,
        "error": letter.error[:SUMMARY_ERROR_CHARS], "truncated": letter.truncated,
    }


def decode_original(codec: Codec, letter: DeadLetter) -> tuple[dict[str, Any] | None, str | None]:
    """(the original value decoded with its source topic's schema, None) or (None, why it does not decode)."""
    if letter.error_type == UNDECODABLE:
        return None, "the dead-letter record itself does not decode"
    if letter.original_value is None:
        return None, "the original record had no value"
    if letter.truncated:
        return None, "the original value was truncated when it was dead-lettered"
    if letter.source_topic not in codec.catalog.topics:
        return None, f"{letter.source_topic[:80]!r} is not a catalog topic"
    try:
        return codec.to_json(letter.source_topic, codec.decode(letter.source_topic, letter.original_value)), None
    except (SomaError, RecursionError, ValueError, TypeError) as exc:
        return None, str(exc)[:500]


def detail(codec: Codec, letter: DeadLetter) -> dict[str, Any]:
    """Everything about one dead letter (JSON-ready): its fields, and the original decoded or previewed."""
    raw = letter.original_value or b""
    decoded, problem = decode_original(codec, letter)
    original: dict[str, Any] = {"size": len(raw) if letter.original_value is not None else None}
    if problem is None:
        original["value"] = decoded
    else:
        original["not_decodable"] = problem
        original["preview_hex"] = raw[:PREVIEW_HEX_BYTES].hex()
        original["preview_base64"] = base64.b64encode(raw[:PREVIEW_BASE64_BYTES]).decode()
        original["preview_complete"] = len(raw) <= PREVIEW_BASE64_BYTES
    return {
        **summary(letter),
        "error": letter.error,
        "occurred_at": _iso(letter.occurred_at),
        "original_key": text_or_base64(letter.original_key),
        "original_headers": {name: text_or_base64(data) for name, data in sorted(letter.headers.items())},
        "original": original,
    }
