"""A background reader of catalog topics from their current ends, for `soma demo` to wait on.

Partitions are assigned explicitly at the high watermarks taken when it starts (no consumer
group, nothing committed), so every record written after `start()` is seen and nothing older.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from soma.contracts.catalog import Catalog
from soma.contracts.codec import Codec
from soma.errors import InfrastructureUnavailable, SomaError
from soma.settings import Settings


@dataclass(frozen=True)
class Seen:
    """A decoded record and when it was written (its Kafka timestamp) and read (wall clock)."""

    topic: str  # catalog name
    value: dict[str, Any]
    headers: dict[str, str]
    partition: int
    offset: int
    timestamp_s: float | None
    received_s: float

    @property
    def at(self) -> float:
        return self.timestamp_s if self.timestamp_s else self.received_s

    @property
    def tenant(self) -> str:
        return str(self.value.get("tenant_id", ""))

    @property
    def position(self) -> str:
        return f"p{self.partition}@{self.offset}"


class Observer:
    def __init__(self, settings: Settings, catalog: Catalog, codec: Codec, topics: Sequence[str]) -> None:
        self.settings, self.catalog, self.codec = settings, catalog, codec
        self.topics = list(topics)
        self._logical = {settings.topic_name(t): t for t in topics}
        self._seen: list[Seen] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self.error: str | None = None

    def start(self) -> None:
        from confluent_kafka import TopicPartition

        from soma.clients import kafka_consumer

        s = self.settings
        consumer = kafka_consumer(s, f"{s.kafka.client_id}-observe-{uuid.uuid4().hex[:8]}")
        assignment = []
        try:
            for physical, logical in self._logical.items():
                for p in range(self.catalog.topic(logical).partitions):
                    _, high = consumer.get_watermark_offsets(TopicPartition(physical, p), timeout=s.kafka.timeout_s)
                    assignment.append(TopicPartition(physical, p, high))
        except Exception as exc:
            consumer.close()
            raise InfrastructureUnavailable(f"kafka: cannot read the ends of the topics to observe: {exc}") from exc
        consumer.assign(assignment)
        self._consumer = consumer
        self._thread = threading.Thread(target=self._run, name="soma-observe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from confluent_kafka import KafkaError

        consumer = self._consumer
        while not self._stop.is_set():
            for msg in consumer.consume(500, timeout=0.2):
                error = msg.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        self.error = error.str()
                    continue
                logical = self._logical.get(msg.topic() or "")
                raw = msg.value()
                if logical is None or not raw:
                    continue
                try:
                    value = self.codec.decode(logical, raw)
                except SomaError:
                    continue
                kind, stamp = msg.timestamp()
                headers = {k: (v or b"").decode(errors="replace") for k, v in (msg.headers() or [])}
                seen = Seen(logical, value, headers, msg.partition() or 0, msg.offset() or 0,
                            stamp / 1000 if kind and stamp and stamp > 0 else None, time.time())
                with self._cond:
                    self._seen.append(seen)
                    self._cond.notify_all()

    def matching(self, predicate: Callable[[Seen], bool]) -> list[Seen]:
        with self._cond:
            return [s for s in self._seen if predicate(s)]

    def wait(self, predicate: Callable[[Seen], bool], timeout_s: float) -> Seen | None:
        """The first record (oldest first) matching `predicate`, waiting up to `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for seen in self._seen:
                    if predicate(seen):
                        return seen
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 0.5))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
