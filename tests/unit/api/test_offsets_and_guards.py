"""Pure parts of the public API: the commit batches of `consume`, and `emit`'s guards (before any database)."""

from __future__ import annotations

from typing import Any

import pytest

from outbox.api import Emitter
from outbox.errors import EmitError
from soma.consumer import Offsets
from soma.contracts.events import ConsumedEvent
from soma.settings import Settings
from tests.support.samples import sample


def _event(offset: int, partition: int = 0) -> ConsumedEvent:
    return ConsumedEvent(topic="chat.messages", partition=partition, offset=offset, key=None, headers={}, value={})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_batch_is_due_after_n_handled_events_or_the_interval() -> None:
    clock = Clock()
    offsets = Offsets(every=3, interval_s=1.0, clock=clock)
    assert not offsets.due()  # nothing handled: nothing to commit, however long it has been
    offsets.done(_event(10))
    offsets.done(_event(11))
    assert not offsets.due()
    offsets.done(_event(5, partition=1))
    assert offsets.due()
    assert offsets.take() == {("chat.messages", 0): 12, ("chat.messages", 1): 6}  # the next offset to read
    offsets.done(_event(12))
    clock.now = 0.5
    assert not offsets.due()
    clock.now = 1.0
    assert offsets.due()


def test_revoked_partitions_are_taken_alone_and_failed_commits_come_back() -> None:
    offsets = Offsets(every=100, interval_s=60.0)
    offsets.done(_event(1))
    offsets.done(_event(7, partition=2))
    assert offsets.take([("chat.messages", 2), ("chat.messages", 9)]) == {("chat.messages", 2): 8}
    taken = offsets.take()
    assert taken == {("chat.messages", 0): 2}
    offsets.restore(taken)
    offsets.done(_event(0))  # an older offset never moves the commit back
    assert offsets.take() == {("chat.messages", 0): 2}


@pytest.fixture(scope="module")
def emitter() -> Emitter:
    return Emitter(Settings.construct_flat())


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"headers": {"traceparent": "x"}}, "header 'traceparent' is set by the platform"),
        ({"headers": {"TraceState": "x"}}, "header 'TraceState'"),
        ({"headers": {"event-type": "x"}}, "header 'event-type'"),
        ({"headers": {"replay-of": "1"}}, "header 'replay-of'"),
        ({"key": "t1:other-session"}, "differs from the catalog's key 't1:session-1'"),
        ({"key": 7}, "key must be a string"),
        ({"event": ["not", "a", "mapping"]}, "must be a mapping"),
        ({"topic": "nope", "key": "k"}, "unknown topic 'nope'"),
    ],
)
def test_emit_refuses_before_touching_the_session(emitter: Emitter, options: dict[str, Any], needle: str) -> None:
    session: Any = object()  # any use of it would fail differently
    event = options.get("event", sample("chat.messages", "t1"))
    with pytest.raises(EmitError, match=needle) as caught:
        emitter.emit(session, options.get("topic", "chat.messages"), event, tenant="t1", dedupe_key="d",
                     key=options.get("key"), headers=options.get("headers"))
    assert "\n" not in str(caught.value)
