"""The dead-letter record of one input, cut down to fit the `dlq` topic when the original is too large.

A DLQ record carries the original key, value and headers besides the error, so an input near
the size limit (or one whose derived output was too large) would not fit the `dlq` topic
itself. `truncated` then keeps every field but cuts the original: each header to
`HEADER_BYTES` (at most `HEADERS_BYTES` of them in all), the key to `KEY_BYTES`, and the value
to what is left of the limit; the record says so with `truncated=true` and `original_size` (the
original's value + key + headers, in bytes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from soma.contracts.limits import record_size

HEADER_BYTES = 1024  # most bytes of one original header value kept in a truncated DLQ record
HEADER_NAME_CHARS = 256
HEADERS_BYTES = 16 * 1024  # most bytes of original headers (names + values) kept in a truncated DLQ record
KEY_BYTES = 1024  # most bytes of the original key kept in a truncated DLQ record
RESERVE_BYTES = 8 * 1024  # room for the DLQ record's own fields, key and headers
ERROR_CHARS = 2000  # the error text is cut to this many characters
TENANT_CHARS = 200  # a tenant id longer than this (it came from a bad header) is cut


def tolerant_text(data: bytes | str | None) -> str:
    """A header or key as text: invalid UTF-8 replaced (never raises)."""
    if data is None:
        return ""
    return data if isinstance(data, str) else bytes(data).decode(errors="replace")


def dead_letter_event(
    *, event_id: str, stream: str, topic: str, partition: int, offset: int, key: bytes | None, raw: bytes,
    headers: Mapping[str, bytes], error_type: str, error: str,
) -> dict[str, Any]:
    """The DeadLetter fields (without tenant) for an input at `topic[partition]@offset`."""
    return {
        "event_id": event_id, "stream": stream, "source_topic": topic, "source_partition": partition,
        "source_offset": offset, "error_type": error_type, "error": error[:ERROR_CHARS],
        "original_key": key, "original_value": raw, "headers": dict(headers),
        "truncated": False, "original_size": None,
    }


def truncated(event: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """`event` with its original key, value and headers cut so the DLQ record fits `limit` bytes."""
    original: Mapping[str, bytes] = event["headers"]
    key: bytes | None = event["original_key"]
    value: bytes = event["original_value"] or b""
    headers: dict[str, bytes] = {}
    used = 0
    for name, data in original.items():
        name, data = name[:HEADER_NAME_CHARS], data[:HEADER_BYTES]
        cost = len(name.encode(errors="replace")) + len(data)
        if used + cost > HEADERS_BYTES:
            break
        headers[name] = data
        used += cost
    cut_key = key[:KEY_BYTES] if key is not None else None
    budget = limit - RESERVE_BYTES - used - len(cut_key or b"") - len(str(event["error"]).encode())
    return {
        **event, "headers": headers, "original_key": cut_key, "original_value": value[:max(0, budget)],
        "truncated": True,
        "original_size": record_size(key, value, [(n, d) for n, d in original.items()]),
    }
