"""Redrive: send dead letters back to their source topic, each acknowledged before it counts.

A redriven record carries the original key, value and headers unchanged (so the `dedupe-key`
header stays the original's and idempotent consumers stay correct), plus
``redrive-of: dlq:<partition>:<offset>`` naming the dead letter (replacing the header of an
earlier redrive). It goes through the platform's idempotent, `acks=all` producer; a record
counts as redriven only once the broker acknowledged it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from soma.clients import kafka_producer
from soma.contracts.events import HEADER_REDRIVE_OF
from soma.dlq.letters import DeadLetter
from soma.dlq.select import LetterId
from soma.errors import first_line
from soma.settings import Settings


@dataclass(frozen=True)
class Redriven:
    """Where a redriven dead letter landed."""

    id: LetterId
    topic: str  # catalog name
    partition: int
    offset: int


def redrive_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers, then ``redrive-of`` naming the dead letter."""
    kept = [(name, value) for name, value in letter.headers.items() if name != HEADER_REDRIVE_OF]
    return [*kept, (HEADER_REDRIVE_OF, str(letter.id).encode())]


class Redriver:
    """Produces redriven records with one idempotent producer (created on first use; thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def _client(self) -> Producer:
        with self._lock:
            if self._producer is None:
                self._producer = kafka_producer(self.settings)
            return self._producer

    def send(self, letters: Sequence[DeadLetter]) -> tuple[list[Redriven], dict[LetterId, str]]:
        """Send each letter to its source topic and wait for every answer.

        Returns the acknowledged ones (in input order) and, per letter that was not, the reason.
        """
        producer = self._client()
        answers: dict[LetterId, Redriven | str] = {}

        def on_delivery(letter: DeadLetter) -> Any:
            def callback(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    answers[letter.id] = err.str()
                else:
                    answers[letter.id] = Redriven(letter.id, letter.source_topic, msg.partition() or 0,
                                                  msg.offset() or 0)
            return callback

        for letter in letters:
            try:
                self._produce(producer, letter, on_delivery(letter))
            except KafkaException as exc:  # refused before sending (e.g. too large): that letter fails
                answers[letter.id] = first_line(exc)
        # message.timeout.ms is 3 broker timeouts: by then every record has its answer.
        producer.flush(self.settings.kafka.timeout_s * 3 + 5)
        done = [answer for letter in letters if isinstance(answer := answers.get(letter.id), Redriven)]
        failed = {
            letter.id: (answer if isinstance(answer := answers.get(letter.id), str) else "no acknowledgement")
            for letter in letters if not isinstance(answers.get(letter.id), Redriven)
        }
        return done, failed

    def _produce(self, producer: Producer, letter: DeadLetter, callback: Any) -> None:
        while True:
            try:
                producer.produce(
                    self.settings.topic_name(letter.source_topic), key=letter.original_key,
                    value=letter.original_value, headers=cast(Any, redrive_headers(letter)), on_delivery=callback,
                )
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                producer.poll(0.1)

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(self.settings.kafka.timeout_s)
                self._producer = None
