"""worker (conversation worker): chat.messages + tool.results -> session state and new events.

Run: `faust -A streams.worker worker`. Both sources are keyed tenant:session and
co-partitioned, so one `sessions` table (changelog-backed) holds every session of the
partition. Per message: a memory.writes event, tool.requests for its tool calls, and the
responder's reply; per tool result: the role=tool ChatMessage that folds it back.

Records are taken in small batches: each is folded into the batch's working session states
and its outputs are handed to the producer; then every output of the batch is awaited, and
only then the new session states are written (their changelog awaited too). Two broker
round trips per batch instead of two per message, with the same guarantee: state never
records an input whose outputs could still be lost.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from streams.app import Incoming, Out, StreamApp
from streams.logic.responders import load_responder
from streams.logic.session import Output, SessionState, on_message, on_tool_result, wants_reply

stream = StreamApp("worker", ["chat.messages", "tool.results"])
app = stream.app
sessions = stream.table("sessions")
responder = load_responder(stream.settings.worker_responder)
BATCH = 200  # most records per batch
BATCH_WAIT_S = 0.002  # longest wait to fill a batch (adds at most this to a quiet stream's latency)


def session_key(record: Incoming) -> str:
    return f"{record.tenant}:{record.value['session_id']}"


def decide(record: Incoming, state: SessionState) -> tuple[SessionState, list[Output]]:
    """The session's next state and the outputs of one input (unchanged state: a duplicate)."""
    value = record.value
    window = stream.settings.streams_dedupe_window
    if record.topic == "tool.results":
        return on_tool_result(state, value, window=window)
    reply = None
    if record.event_id not in state.seen and wants_reply(state, value):
        reply = responder.respond(state, value)
    return on_message(state, value, window=window, reply=reply)


class Batch:
    """The working session states of one batch and the deliveries they wait for."""

    def __init__(self) -> None:
        self.states: dict[str, SessionState] = {}
        self.partitions: dict[str, int] = {}
        self.deliveries: list[Awaitable[Any]] = []

    async def stage(self, record: Incoming) -> None:
        key = session_key(record)
        state = self.states[key] if key in self.states else SessionState.from_dict(sessions.get(key))
        new_state, outputs = decide(record, state)
        if new_state == state:
            stream.metrics.duplicates.inc()
            return
        self.deliveries += await stream.send([Out(o.topic, o.event, record.tenant) for o in outputs], cause=record)
        self.states[key] = new_state  # only once its outputs are with the producer
        self.partitions[key] = record.partition

    async def commit(self) -> None:
        await stream.acknowledged(self.deliveries, "outputs")
        by_partition: dict[int, dict[str, Any]] = {}
        for key, state in self.states.items():
            by_partition.setdefault(self.partitions[key], {})[key] = state.to_dict()
        for partition, changes in by_partition.items():
            await stream.write_state(sessions, partition, changes)


@app.agent(stream.sources)
async def converse(events: Any) -> None:
    await stream.wait_for_config()
    async for taken in events.take_events(BATCH, within=BATCH_WAIT_S):
        await stream.complete(process(taken))


async def process(taken: list[Any]) -> None:
    batch = Batch()
    for event in taken:
        record = await stream.decode(event)
        if record is not None:
            await stream.handle_traced(record, batch.stage)  # a failing record is dead-lettered
    await batch.commit()
