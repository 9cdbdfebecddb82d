"""What `Publisher.send` does with a row `produce()` refuses: that row gets the error, the rest go on."""

from __future__ import annotations

import random
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from outbox.relay.claim import ClaimedRow
from outbox.relay.judge import RetryPolicy, judge
from outbox.relay.policy import Circuits
from outbox.relay.publisher import ENCODING, QUEUE_FULL, Batch, Publisher
from soma.settings import Settings


class FakeProducer:
    """Refuses the rows whose key is in `refuse` with that exception; accepts the others."""

    def __init__(self, refuse: dict[str, BaseException]) -> None:
        self.refuse = refuse
        self.produced: list[str] = []
        self.polls = 0

    def produce(self, topic: str, *, value: bytes, key: bytes, headers: Any, on_delivery: Any) -> None:
        error = self.refuse.get(key.decode())
        if error is not None:
            raise error
        self.produced.append(key.decode())

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0


def _publisher(producer: FakeProducer, **fields: Any) -> Publisher:
    publisher = Publisher.__new__(Publisher)
    publisher.settings = Settings().replace(**fields)
    publisher.fatal = None
    publisher._producer = producer  # type: ignore[assignment]
    return publisher


def _rows(*keys: str) -> list[ClaimedRow]:
    return [ClaimedRow(i, "acme", "chat.messages", key, {"tenant": "acme"}, b"v", 0, 0.0)
            for i, key in enumerate(keys)]


def _send(producer: FakeProducer, rows: list[ClaimedRow], **fields: Any) -> Batch:
    batch = Batch(None, rows)  # type: ignore[arg-type]
    _publisher(producer, **fields).send(batch)
    return batch


def test_a_row_produce_refuses_gets_the_error_and_the_rest_of_the_batch_is_produced() -> None:
    too_large = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large"))
    producer = FakeProducer({"big": too_large})
    batch = _send(producer, _rows("a", "big", "b"))
    assert producer.produced == ["a", "b"]
    assert batch.closed
    assert batch.produced == 3
    assert batch.outstanding == 2  # the refused row has its "report" already
    assert batch.codes[1] == "MSG_SIZE_TOO_LARGE"
    assert batch.errors[1] == "MSG_SIZE_TOO_LARGE: Broker: Message size too large"
    assert batch.acked_at[1] > 0
    assert batch.errors[0] is None
    assert batch.errors[2] is None


def test_a_key_or_header_that_cannot_be_encoded_is_that_rows_error() -> None:
    rows = _rows("a", "bad\ud800", "c")
    producer = FakeProducer({})
    batch = _send(producer, rows)
    assert producer.produced == ["a", "c"]
    assert batch.codes[1] == ENCODING
    assert (batch.errors[1] or "").startswith("_ENCODING: key or headers cannot be encoded")
    assert "\n" not in (batch.errors[1] or "")


def test_a_serialization_error_from_the_client_is_that_rows_error() -> None:
    producer = FakeProducer({"odd": TypeError("an unexpected type\nsecond line")})
    batch = _send(producer, _rows("odd", "b"))
    assert batch.errors[0] == f"{ENCODING}: an unexpected type"
    assert producer.produced == ["b"]


def test_a_queue_that_stays_full_past_the_delivery_timeout_fails_the_row_without_counting() -> None:
    producer = FakeProducer({"a": BufferError("Local: Queue full")})
    batch = _send(producer, _rows("a", "b"), outbox_relay_delivery_timeout_s=0.1)
    assert batch.codes[0] == QUEUE_FULL
    assert producer.polls >= 1  # delivery reports were served while waiting
    assert producer.produced == ["b"]


def test_later_rows_of_a_refused_rows_key_are_held_back_other_keys_go_on() -> None:
    too_large = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large"))
    rows = _rows("k", "k", "other", "k")
    producer = FakeProducer({})
    original = producer.produce
    calls: list[int] = []

    def produce(topic: str, **kwargs: Any) -> None:  # the first row of key "k" is refused
        calls.append(1)
        if len(calls) == 1:
            raise too_large
        original(topic, **kwargs)

    producer.produce = produce  # type: ignore[method-assign]
    batch = _send(producer, rows)
    assert producer.produced == ["other"]
    assert batch.produced == 4  # all accounted for...
    assert batch.codes[0] == "MSG_SIZE_TOO_LARGE"
    assert [batch.acked_at[i] == 0.0 for i in (1, 3)] == [True, True]  # ...rows 1 and 3 unreported: released
    assert batch.outstanding == 1
    outcome = judge(batch, RetryPolicy(1.0, 60.0, 3), Circuits(5, 30), random.Random(0), now=0.0)
    assert outcome.fail_ids == [0]
    assert outcome.unreported_tenants == {"acme"}
