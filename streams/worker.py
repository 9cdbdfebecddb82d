"""worker (conversation worker): chat.messages + tool.results -> session state and new events.

Run: `faust -A streams.worker worker`. Both sources are keyed tenant:session and
co-partitioned, so one `sessions` table (changelog-backed) holds every session of the
partition. Per message: a memory.writes event, tool.requests for its tool calls, and the
responder's reply; per tool result: the role=tool ChatMessage that folds it back
(`streams.logic.session.decide`).

Records are taken in small batches: each is folded into the batch's working session states
and its outputs are handed to the producer; then every output of the batch is awaited, and
only then the new session states are written (their changelog awaited too). Two broker
round trips per batch instead of two per message, with the same guarantee: state never
records an input whose outputs could still be lost.

Wake on traffic: a user's message for a tenant its sleep mirror holds asleep (ENABLE_SLEEP on, the
policy's wake_on_traffic) also asks the integrator to wake it (a SleepRequest on cog.sleep_requests,
its id derived from the current transition: every message meanwhile asks the same).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from streams.app import StreamApp
from streams.logic import session
from streams.logic.output import Output
from streams.logic.responders import load_responder
from streams.logic.session import SessionState
from streams.logic.sleep import traffic_wake
from streams.runtime.records import Incoming
from streams.runtime.state import StagedStates

stream = StreamApp("worker", ["chat.messages", "tool.results"], sleep=True)
app = stream.app
sessions = stream.table("sessions")
responder = load_responder(stream.settings.streams.worker_responder)
BATCH = 200  # most records per batch
BATCH_WAIT_S = 0.002  # longest wait to fill a batch (adds at most this to a quiet stream's latency)


MAX_ASKED = 10_000
asked_wake: dict[str, str] = {}  # tenant -> the wake request already sent for its current transition


def session_key(record: Incoming) -> str:
    return f"{record.tenant}:{record.value['session_id']}"


def wake_request(record: Incoming) -> list[Output]:
    """The traffic_wake request a user's message makes for its sleeping tenant (once per transition)."""
    tenant = record.tenant
    if record.topic != "chat.messages" or record.value.get("role") != "user" or not stream.sleep_enabled(tenant):
        return []
    request = traffic_wake(tenant, stream.sleep_current(tenant), stream.sleep_policy(tenant), datetime.now(UTC))
    if request is None or asked_wake.get(tenant) == request["event_id"]:
        return []
    if len(asked_wake) >= MAX_ASKED and tenant not in asked_wake:
        asked_wake.clear()  # forgetting only costs a repeated request, which the integrator ignores
    asked_wake[tenant] = request["event_id"]
    return [Output("cog.sleep_requests", request, tenant)]


async def process(records: list[Incoming]) -> None:
    """Stage every record (a failing one is dead-lettered), then outputs acknowledged, then state written."""
    staged = StagedStates(sessions, SessionState.from_dict)
    deliveries: list[Awaitable[Any]] = []

    async def stage(record: Incoming) -> None:
        key = session_key(record)
        state = staged.get(key)
        new_state, outputs = session.decide(state, record.topic, record.value,
                                            window=stream.settings.streams.dedupe_window, respond=responder.respond)
        if new_state == state:
            stream.metrics.duplicates.inc()
            return
        deliveries.extend(await stream.send([*outputs, *wake_request(record)], cause=record))
        staged.put(key, new_state, record.partition)  # only once its outputs are with the producer

    for record in records:
        await stream.handle_traced(record, stage)
    await stream.acknowledged(deliveries, "outputs")
    await stream.write_states(staged)


@app.agent(stream.sources)
async def converse(events: Any) -> None:
    await stream.run_batches(events, process, BATCH, BATCH_WAIT_S)
