"""A batch's working states: read through to the table, written by partition once its outputs are acknowledged."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from streams.logic.session import SessionState
from streams.runtime.state import StagedStates, StateWriter


class Writes(StateWriter):
    def __init__(self) -> None:
        self.written: list[tuple[int, dict[str, Any]]] = []
        self.waits: list[int] = []

    async def send_state(self, table: Any, partition: int, changes: Any) -> list[Any]:
        self.written.append((partition, dict(changes)))
        return [f"delivery {partition}:{key}" for key in changes]

    async def acknowledged(self, futures: Any, what: str) -> None:
        self.waits.append(len(futures))


def test_staged_states_read_the_table_until_the_batch_changes_them() -> None:
    table = {"t:s1": SessionState(message_count=2).to_dict()}
    staged = StagedStates(table, SessionState.from_dict)
    assert staged.get("t:s1") == SessionState(message_count=2)
    assert staged.get("t:new") == SessionState()
    staged.put("t:s1", SessionState(message_count=3), partition=1)
    assert staged.get("t:s1") == SessionState(message_count=3)
    assert table["t:s1"]["message_count"] == 2  # nothing written before `write_states`


def test_write_states_writes_each_partitions_changes_once() -> None:
    staged = StagedStates({}, SessionState.from_dict)
    staged.put("a", SessionState(message_count=1), partition=0)
    staged.put("b", SessionState(message_count=1), partition=2)
    staged.put("c", SessionState(message_count=1), partition=0)
    staged.put("a", SessionState(message_count=2), partition=0)
    writer = Writes()
    asyncio.run(writer.write_states(staged))
    assert [(p, sorted(c)) for p, c in writer.written] == [(0, ["a", "c"]), (2, ["b"])]
    assert writer.written[0][1]["a"]["message_count"] == 2
    assert writer.waits == [3]  # one wait for every partition's changelog records


def test_send_state_serializes_as_faust_tables_do_and_goes_straight_to_the_producer() -> None:
    import streams.worker as worker

    table = worker.sessions

    class Producer:
        def __init__(self) -> None:
            self.sent: list[dict[str, Any]] = []

        async def send(self, topic: str, key: bytes, value: bytes, partition: int, timestamp: Any,
                       headers: Any) -> str:
            self.sent.append({"topic": topic, "key": key, "value": value, "partition": partition})
            return "delivery"

    producer = Producer()

    class Writer(StateWriter):
        app = SimpleNamespace(producer=producer)

    state = SessionState(message_count=1, seen=["e1"]).to_dict()
    deliveries = asyncio.run(Writer().send_state(table, 2, {"acme:s1": state}))
    assert len(deliveries) == 1
    (sent,) = producer.sent
    key, _ = table.changelog_topic.prepare_key("acme:s1", table.key_serializer)
    value, _ = table.changelog_topic.prepare_value(state, table.value_serializer)
    assert (sent["topic"], sent["key"], sent["value"], sent["partition"]) == (
        table.changelog_topic.get_topic_name(), key, value, 2)
    assert json.loads(sent["value"]) == state
    assert json.loads(sent["key"]) == "acme:s1"
    assert table.data["acme:s1"] == state  # the local store too
