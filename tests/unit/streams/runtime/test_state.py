"""A batch's working states: read through to the table, written by partition once its outputs are acknowledged."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.logic.session import SessionState
from streams.runtime.state import StagedStates, StateWriter


class Writes(StateWriter):
    def __init__(self) -> None:
        self.written: list[tuple[int, dict[str, Any]]] = []

    async def write_state(self, table: Any, partition: int, changes: Any) -> None:
        self.written.append((partition, dict(changes)))


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
