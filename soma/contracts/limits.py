"""Record size limits: a record too large for its topic is refused before it reaches a producer.

The limit of a topic is its `max_message_bytes` in topics.yaml, else `SOMA_KAFKA_MAX_MESSAGE_BYTES`
(librdkafka's own default, below the broker's `message.max.bytes`). The size counted is what the
producer sends for one record: value + key + header names and values.
"""

from __future__ import annotations

from collections.abc import Sequence

from soma.contracts.catalog import TopicSpec
from soma.errors import EventValidationError
from soma.settings import Settings


class RecordTooLarge(EventValidationError):
    """A record exceeds its topic's size limit; the message names the topic, the size and the limit."""


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]] = ()) -> int:
    """Bytes of one record as a producer counts them: value + key + header names and values."""
    return len(value or b"") + len(key or b"") + sum(len(name.encode()) + len(data or b"") for name, data in headers)


def size_limit(spec: TopicSpec | None, settings: Settings) -> int:
    """The largest record `spec`'s topic takes (the platform-wide limit for a topic not in the catalog)."""
    limit = settings.kafka.max_message_bytes
    return min(limit, spec.max_message_bytes) if spec is not None and spec.max_message_bytes else limit


def check_record_size(topic: str, size: int, limit: int) -> None:
    """Raise `RecordTooLarge` when `size` exceeds `limit`."""
    if size > limit:
        raise RecordTooLarge(
            f"{topic}: record of {size} bytes (value + key + headers) exceeds the topic's limit of {limit} bytes"
        )
