"""Bounded reads of the `dlq` topic: a listing with filters, or dead letters by id.

A listing reads each partition, in order, from its start (or the first offset at `since`, asked
of the broker with offsets_for_times, or just after the `after` id) up to its end as it was when
the read began, and stops at `limit` matches or the deadline. A listing that stops early says
where to continue (`next_after`); one that reached every end is `complete`. An empty or missing
topic answers at once. No consumer group is joined and nothing is committed.

One consumer is kept per reader and used under a lock (librdkafka consumers are not shared
between threads), so the admin API serves reads one at a time.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from soma.clients import kafka_consumer
from soma.contracts.codec import Codec
from soma.dlq.errors import DeadLetterNotFound
from soma.dlq.letters import DLQ_TOPIC, DeadLetter, from_record
from soma.dlq.select import DlqFilter, LetterId
from soma.errors import InfrastructureUnavailable, first_line
from soma.settings import Settings, env_name

POLL_S = 0.2


@dataclass(frozen=True)
class Page:
    """Dead letters of a listing, oldest first (by partition, then offset)."""

    items: list[DeadLetter]
    scanned: int  # `dlq` records read
    complete: bool  # every partition was read to its end
    next_after: str | None  # pass as `after` to continue; None when complete
    topic_exists: bool = True


class DlqReader:
    """Reads one environment's `dlq` topic (its physical name carries the topic prefix)."""

    def __init__(self, settings: Settings, codec: Codec, deadline_s: float | None = None) -> None:
        self.settings, self.codec = settings, codec
        self.topic = settings.topic_name(DLQ_TOPIC)
        self.deadline_s = deadline_s if deadline_s is not None else settings.kafka.timeout_s
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()

    # --- the consumer ----------------------------------------------------------------------
    def _client(self) -> Consumer:
        if self._consumer is None:
            self._consumer = kafka_consumer(
                self.settings, f"{self.settings.kafka.client_id}-dlq-reader-{uuid.uuid4().hex[:12]}",
                **{"enable.partition.eof": True, "queued.max.messages.kbytes": 8192, "fetch.wait.max.ms": 50},
            )
        return self._consumer

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

    def _unavailable(self, what: str, exc: BaseException | None = None) -> InfrastructureUnavailable:
        reason = f": {first_line(exc)}" if exc is not None else ""
        return InfrastructureUnavailable(
            f"kafka: {what} of {self.topic} at {self.settings.kafka.bootstrap} ({env_name('kafka_bootstrap')})"
            f" failed{reason}"
        )

    def _partitions(self, consumer: Consumer) -> list[int] | None:
        """The topic's partitions, or None when it does not exist (no dead letter was ever written)."""
        try:
            metadata = consumer.list_topics(self.topic, timeout=self.settings.kafka.timeout_s)
        except KafkaException as exc:
            raise self._unavailable("metadata", exc) from exc
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None:
            if found is not None and found.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise self._unavailable("metadata", KafkaException(found.error))
            return None
        return sorted(found.partitions)

    def _bounds(self, consumer: Consumer, partition: int) -> tuple[int, int]:
        try:
            bounds = consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=self.settings.kafka.timeout_s, cached=False
            )
        except KafkaException as exc:
            raise self._unavailable("watermarks", exc) from exc
        if bounds is None:
            raise self._unavailable("watermarks")
        return int(bounds[0]), int(bounds[1])

    def _offset_at(self, consumer: Consumer, partition: int, since_ms: int, high: int) -> int:
        """The first offset at or after `since_ms` (the end when there is none)."""
        try:
            (found,) = consumer.offsets_for_times(
                [TopicPartition(self.topic, partition, since_ms)], timeout=self.settings.kafka.timeout_s
            )
        except KafkaException as exc:
            raise self._unavailable("offsets_for_times", exc) from exc
        return high if found.offset < 0 else int(found.offset)

    def _records(self, consumer: Consumer, partition: int, start: int, high: int, deadline: float) -> Iterator[Any]:
        """The messages of `partition` from `start` up to `high`; stops early (quietly) at the deadline."""
        consumer.assign([TopicPartition(self.topic, partition, start)])
        while time.monotonic() < deadline:
            msg = consumer.poll(min(POLL_S, max(0.01, deadline - time.monotonic())))
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF and msg.partition() == partition:
                    return
                if error.fatal():
                    raise self._unavailable("read", KafkaException(error))
                continue  # transient (the client retries); the deadline bounds it
            offset = msg.offset() or 0
            if msg.partition() != partition or offset < start:
                continue  # left over from an earlier assignment
            yield msg
            if offset >= high - 1:
                return

    def _letter(self, msg: Any) -> DeadLetter:
        raw = msg.value()
        headers = {str(k): (v if isinstance(v, bytes) else b"") for k, v in (msg.headers() or [])}
        kind, stamp = msg.timestamp()
        return from_record(
            self.codec, LetterId(msg.partition(), msg.offset()), raw if isinstance(raw, bytes) else b"",
            stamp if kind != 0 else None, headers,
        )

    # --- reads -----------------------------------------------------------------------------
    def scan(self, flt: DlqFilter, *, limit: int, after: LetterId | None = None) -> Page:
        """Up to `limit` (>= 1) dead letters matching `flt`, after `after` (exclusive), within the deadline."""
        limit = max(1, limit)
        with self._lock:
            return self._scan(self._client(), flt, limit, after)

    def _scan(self, consumer: Consumer, flt: DlqFilter, limit: int, after: LetterId | None) -> Page:
        deadline = time.monotonic() + self.deadline_s
        partitions = self._partitions(consumer)
        if partitions is None:
            return Page([], 0, True, None, topic_exists=False)
        items: list[DeadLetter] = []
        scanned = 0
        last: LetterId | None = after
        for partition in partitions:
            if after is not None and partition < after.partition:
                continue
            low, high = self._bounds(consumer, partition)
            start = max(low, after.offset + 1) if after is not None and partition == after.partition else low
            if flt.since is not None and start < high:
                since_ms = max(0, int(flt.since.timestamp() * 1000))  # negative times are special values to Kafka
                start = max(start, self._offset_at(consumer, partition, since_ms, high))
            if start >= high:
                continue
            reached = start - 1
            for msg in self._records(consumer, partition, start, high, deadline):
                scanned += 1
                reached = msg.offset()
                last = LetterId(partition, reached)
                letter = self._letter(msg)
                if flt.matches(letter):
                    items.append(letter)
                    if len(items) >= limit:
                        return Page(items, scanned, False, str(last))
            if reached < high - 1 and time.monotonic() >= deadline:  # stopped before this partition's end
                if last is None:
                    raise self._unavailable(f"no record read within {self.deadline_s:g}s: the read")
                return Page(items, scanned, False, str(last))
        return Page(items, scanned, True, None)

    def get(self, letter_id: LetterId) -> DeadLetter:
        """The dead letter at `letter_id`; `DeadLetterNotFound` when there is none."""
        found = self.get_many([letter_id])
        if letter_id not in found:
            raise DeadLetterNotFound(f"no dead letter {letter_id} in {self.topic} (never written, or past retention)")
        return found[letter_id]

    def get_many(self, ids: Iterable[LetterId]) -> dict[LetterId, DeadLetter]:
        """The dead letters at these ids (the ones that exist), read within the deadline."""
        with self._lock:
            consumer = self._client()
            deadline = time.monotonic() + self.deadline_s
            partitions = set(self._partitions(consumer) or [])
            bounds: dict[int, tuple[int, int]] = {}
            found: dict[LetterId, DeadLetter] = {}
            for wanted in sorted(set(ids)):
                if wanted.partition not in partitions:
                    continue
                if wanted.partition not in bounds:
                    bounds[wanted.partition] = self._bounds(consumer, wanted.partition)
                low, high = bounds[wanted.partition]
                if not low <= wanted.offset < high:
                    continue
                for msg in self._records(consumer, wanted.partition, wanted.offset, wanted.offset + 1, deadline):
                    if msg.offset() == wanted.offset:
                        found[wanted] = self._letter(msg)
                    break
                else:
                    if time.monotonic() >= deadline:
                        raise self._unavailable(f"no answer within {self.deadline_s:g}s: the read")
            return found
