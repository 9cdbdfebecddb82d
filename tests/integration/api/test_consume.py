"""`soma.consume` / `consume_async` against the real Kafka: at-least-once, batched commits, poison records."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from soma import consume, consume_async
from soma.clients import kafka_admin, kafka_producer
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import EventProducer
from soma.errors import ConsumeError
from soma.settings import Settings
from tests.support.samples import sample

TOPIC = "chat.messages"
COUNT = 10


@pytest.fixture
def own(settings: Settings) -> Settings:
    """chat.messages (one partition) under a prefix of this test's own: no other test's records show up."""
    mine = settings.replace(topic_prefix=f"{settings.kafka.topic_prefix}api{uuid.uuid4().hex[:6]}.")
    admin = kafka_admin(mine)
    for future in admin.create_topics([NewTopic(mine.topic_name(TOPIC), num_partitions=1)]).values():
        future.result(timeout=60)
    return mine


@pytest.fixture
def ids(own: Settings) -> list[str]:
    """COUNT events of one new session, produced in order; their event ids."""
    tenant = f"c-{uuid.uuid4().hex[:8]}"
    catalog = load_catalog()
    producer = EventProducer(own, catalog, Codec(catalog, own))
    records = [producer.prepare(TOPIC, {**sample(TOPIC, tenant=tenant, n=1), "sequence": i}, tenant=tenant)
               for i in range(COUNT)]
    producer.send_all(records)
    producer.close()
    return [str(r.event["event_id"]) for r in records]


class HandlerFailed(Exception):
    pass


def test_batched_commits_and_a_failing_handler_gets_its_event_again(
    own: Settings, ids: list[str]
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    k = 7
    seen: list[str] = []
    committed_at: list[int] = []

    def run() -> None:
        with consume(TOPIC, group=group, settings=own, commit_every=3, commit_interval_ms=600_000,
                     idle_timeout_s=60) as events:
            for event in events:
                assert event.error is None
                seen.append(event.value["event_id"])
                partition = (TOPIC, event.partition)
                committed_at.append(events.committed([partition])[partition])
                if len(seen) == k + 1:
                    raise HandlerFailed  # the handler of event k (0-based) fails

    with pytest.raises(HandlerFailed):
        run()
    assert seen == ids[: k + 1]
    # Committed in batches of 3 handled events, at the step that asks for the next event:
    # before event i, floor(i / 3) * 3 events are committed (-1001: nothing yet).
    assert committed_at == [-1001, -1001, -1001, 3, 3, 3, 6, 6], committed_at
    # The failed event was not committed: a new consumer of the group starts exactly there.
    with consume(TOPIC, group=group, settings=own, idle_timeout_s=60, max_events=COUNT - k) as again:
        redelivered = [event.value["event_id"] for event in again]
    assert redelivered == ids[k:]


def test_leaving_normally_commits_the_last_event(own: Settings, ids: list[str]) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    with consume(TOPIC, group=group, settings=own, idle_timeout_s=60) as events:
        for index, _ in enumerate(events):
            if index == 4:
                break  # a normal exit: event 4 was handled
    with consume(TOPIC, group=group, settings=own, idle_timeout_s=60, max_events=1) as again:
        assert [event.value["event_id"] for event in again] == [ids[5]]


def test_a_plain_for_loop_keeps_the_event_in_hand_uncommitted(
    own: Settings, ids: list[str]
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    for index, _ in enumerate(consume(TOPIC, group=group, settings=own, idle_timeout_s=60)):
        if index == 2:
            break  # without `with`, break looks like an exception: event 2 comes again
    with consume(TOPIC, group=group, settings=own, idle_timeout_s=60, max_events=1) as again:
        assert [event.value["event_id"] for event in again] == [ids[2]]


def test_async_consume_is_at_least_once_too(own: Settings, ids: list[str]) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"

    async def first_run() -> list[str]:
        seen: list[str] = []
        ticks = 0

        async def ticker() -> None:  # the event loop keeps running while the consumer polls
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        try:
            async with consume_async(TOPIC, group=group, settings=own, commit_every=2,
                                     idle_timeout_s=60) as events:
                async for event in events:
                    seen.append(event.value["event_id"])
                    if len(seen) == 4:
                        raise HandlerFailed
        except HandlerFailed:
            pass
        finally:
            task.cancel()
        assert ticks > 0
        return seen

    async def second_run() -> list[str]:
        async with consume_async(TOPIC, group=group, settings=own, idle_timeout_s=60, max_events=2) as events:
            return [event.value["event_id"] async for event in events]

    assert asyncio.run(first_run()) == ids[:4]
    assert asyncio.run(second_run()) == ids[3:5]


def test_a_poison_record_is_reported_not_fatal(own: Settings, ids: list[str]) -> None:
    tenant = "poison"
    producer: Producer = kafka_producer(own)
    producer.produce(own.topic_name(TOPIC), key=f"{tenant}:session-1".encode(), value=b"\x00garbage",
                     headers=[("tenant", tenant.encode())])
    producer.flush(30)
    group = f"g-{uuid.uuid4().hex[:8]}"
    with consume(TOPIC, group=group, settings=own, idle_timeout_s=60, max_events=COUNT + 1) as events:
        got = list(events)
    assert [e.value["event_id"] for e in got[:COUNT]] == ids
    assert got[COUNT].error is not None
    assert got[COUNT].value == {}


@pytest.mark.parametrize(
    ("options", "needle"),
    [({"group": ""}, "group"), ({"group": "g", "commit_every": 0}, "commit_every"),
     ({"group": "g", "commit_interval_ms": -1}, "commit_interval_ms")],
)
def test_bad_options_are_one_line(own: Settings, options: dict[str, object], needle: str) -> None:
    with pytest.raises(ConsumeError, match=needle):
        consume(TOPIC, settings=own, **options)  # type: ignore[arg-type]


def test_an_unknown_topic_is_refused(own: Settings) -> None:
    with pytest.raises(Exception, match=r"unknown topic 'no\.such'"):
        consume("no.such", group="g", settings=own)


def test_from_the_end_after_wait_assigned_misses_nothing_produced_later(own: Settings, ids: list[str]) -> None:
    """ids were produced before the group existed: skipped; what is produced after wait_assigned comes."""
    catalog = load_catalog()
    group = f"g-{uuid.uuid4().hex[:8]}"
    with consume(TOPIC, group=group, settings=own, from_beginning=False, idle_timeout_s=60) as events:
        assert events.wait_assigned(60)
        producer = EventProducer(own, catalog, Codec(catalog, own))
        later = producer.send(TOPIC, sample(TOPIC, tenant="later"), tenant="later")
        producer.close()
        first = next(iter(events))
    assert first.value["event_id"] == later.event_id
    assert first.value["event_id"] not in ids


def test_bad_async_options_fail_at_the_call(own: Settings) -> None:
    with pytest.raises(ConsumeError, match="commit_every"):
        consume_async(TOPIC, group="g", settings=own, commit_every=0)


def test_a_crash_redelivers_from_the_last_committed_batch(own: Settings, ids: list[str]) -> None:
    """A consumer that dies without closing (its Kafka client gone, nothing committed at exit): the group
    resumes at the last batch committed while it ran, so the failed event and the handled events after
    that batch come again, and nothing is lost."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    events = consume(TOPIC, group=group, settings=own, commit_every=3, commit_interval_ms=600_000,
                     idle_timeout_s=60)
    iterator = iter(events)
    for _ in range(8):  # events 0..6 handled, event 7 in hand when "the process dies"
        next(iterator)
    assert events.committed([(TOPIC, 0)]) == {(TOPIC, 0): 6}  # the batch of events 3..5 (commit_every=3)
    events.core.offsets.pending.clear()  # the crash: what was handled since that batch is forgotten ...
    events.core.consumer.close()  # ... and the client leaves the group without committing anything
    events.core.closed = True
    with consume(TOPIC, group=group, settings=own, idle_timeout_s=60, max_events=COUNT - 6) as again:
        assert [event.value["event_id"] for event in again] == ids[6:]
