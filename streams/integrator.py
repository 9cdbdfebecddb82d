"""integrator: cog.predictor_updates -> per-tenant softmax frame -> Redis + cog.global_frame; and the owner
of sleep: cog.sleep_requests (and its clock) -> cog.sleep + Redis `sleep:{tenant}` (streams.runtime.sleep_owner).

Run: `faust -A streams.integrator worker`. State per tenant (smoothed confidences, leader,
frame sequence, recent input ids) lives in the `tenants` table. A leader change is checked
with OPA when `SOMA_OPA_URL` is set. With `ENABLE_COG_THREADS` off the stream consumes and
commits but emits nothing and changes no state (`soma_integrator_updates_skipped_total` counts those updates).
With `ENABLE_SLEEP` on for a tenant, its sleep state sets η (the EMA alpha) and τ: in deep (η = 0) the
frames come from the smoothed state and a domain not known yet is not added; in freeze nothing is emitted.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from soma.clients import async_redis_client
from soma.contracts.ids import derive_id
from streams.app import StreamApp
from streams.logic.integrate import IntegratorParams, IntegratorState, commit, propose
from streams.logic.output import Output
from streams.runtime.emit import Prepared
from streams.runtime.faults import is_infrastructure
from streams.runtime.opa import LeaderPolicy
from streams.runtime.records import Incoming
from streams.runtime.sleep_owner import SleepOwner
from streams.runtime.state import StagedStates

stream = StreamApp("integrator", ["cog.predictor_updates", "cog.sleep_requests"], needs=("redis", "opa"), sleep=True)
app = stream.app
tenants = stream.table("tenants")
policy = LeaderPolicy(stream.settings.streams.opa_url, stream.settings.streams.opa_policy_path,
                      metrics=stream.metrics.auth)
_redis: Redis | None = None  # the Redis client, built on first use (on the worker's event loop)
BATCH = 1000  # most updates per batch (one delivery round trip, one Redis pipeline, one state write per tenant)
BATCH_WAIT_S = 0.02  # longest wait to fill a batch (adds at most this to the update-to-frame latency)
# Redeliveries are caught by source offset; the id window only has to catch replays (new offsets,
# same ids) of recent updates, so it stays short: the tenant's state is rewritten every batch.
SEEN_WINDOW = min(stream.settings.streams.dedupe_window, 32)


def _redis_client() -> Redis:
    global _redis
    if _redis is None:
        _redis = async_redis_client(stream.settings)
    return _redis


sleep = SleepOwner(stream, _redis_client)
app.timer(interval=1.0)(sleep.tick)


def params_for(tenant: str) -> tuple[IntegratorParams, str] | None:
    """The tenant's parameters and applied sleep state; None while cog threads are off for it, or it is frozen."""
    if not stream.param("enable_cog_threads", tenant):
        return None
    state = stream.applied_sleep(tenant)  # awake while ENABLE_SLEEP is off for the tenant
    if stream.sleep_enabled(tenant):
        eff = stream.sleep_effective(tenant, state)
        if not eff.emits_frames:
            return None
        return IntegratorParams(alpha=eff.eta, temperature=eff.temperature, dedupe_window=SEEN_WINDOW), state
    return IntegratorParams(
        alpha=float(stream.param("integrator_alpha", tenant)),
        temperature=float(stream.param("integrator_temperature", tenant)),
        dedupe_window=SEEN_WINDOW,
    ), state


async def fold(
    record: Incoming, states: StagedStates[IntegratorState],
    batch_params: dict[str, tuple[IntegratorParams, str] | None],
) -> tuple[Prepared, dict[str, Any]] | None:
    """Apply one update to the batch's working states; the frame to emit (prepared, and as fields).

    The frame is prepared (validated, encoded, within the topic's size limit) before the state is
    staged: an update whose frame is refused changes nothing and is dead-lettered by the caller."""
    tenant = record.tenant
    if tenant not in batch_params:  # live config changes between batches, not within one
        batch_params[tenant] = params_for(tenant)
    sleeping = batch_params[tenant]
    state = states.get(tenant)
    if sleeping is None or (sleeping[0].alpha == 0.0 and not state.smoothed):  # off, frozen, or deep knowing nothing
        stream.metrics.tenant_child(stream.metrics.updates_skipped, tenant).inc()
        return None
    params = sleeping[0]
    proposal = propose(state, record.value, params, offset=record.offset)
    if proposal is None:
        stream.metrics.duplicates.inc()
        return None
    allowed = True
    if proposal.leader_changes:
        answer = await policy.allow(
            {"tenant": tenant, "from": proposal.previous, "to": proposal.candidate, "weights": proposal.weights},
            fail_mode=str(stream.param("opa_fail_mode", tenant)),
            timeout_s=float(stream.param("opa_timeout_s", tenant)),
            cache_ttl_s=float(stream.param("opa_cache_ttl_s", tenant)),
        )
        allowed = answer.allowed
    new_state, fields = commit(state, proposal, allowed)
    frame = {"event_id": derive_id(record.event_id, "frame"), "occurred_at": record.value["occurred_at"], **fields}
    (prepared,) = stream.prepare_outputs([Output("cog.global_frame", frame, tenant)])
    states.put(tenant, new_state, record.partition)
    if frame["vetoed"]:
        stream.metrics.tenant_child(stream.metrics.vetoes, tenant).inc()
    elif proposal.leader_changes:
        stream.metrics.tenant_child(stream.metrics.leader_switches, tenant).inc()
    return prepared, frame


async def process(batch: list[Incoming]) -> None:
    """One batch: fold every update, deliver all frames, cache the latest per tenant, then write state.

    Frames are delivered (awaited) before the states recording their inputs are written, so a
    restart never skips an input whose frame was lost; one broker round trip per batch.
    """
    states = StagedStates(tenants, IntegratorState.from_dict)
    outputs: list[Prepared] = []
    latest: dict[str, dict[str, Any]] = {}
    batch_params: dict[str, tuple[IntegratorParams, str] | None] = {}
    for record in batch:
        try:
            with stream.log_context(record):
                if record.topic == "cog.sleep_requests":
                    await sleep.handle_request(record)
                    batch_params.pop(record.tenant, None)  # the next update of the tenant sees the new state
                    continue
                sleep.seen(record.tenant)
                result = await fold(record, states, batch_params)
        except Exception as exc:
            if is_infrastructure(exc):
                raise
            await stream.reject(record, exc)
            continue
        if result is not None:
            outputs.append(result[0])
            latest[record.tenant] = result[1]
    if not outputs:
        return
    for future in await stream.send_prepared(outputs):
        await future
    async with _redis_client().pipeline(transaction=False) as pipe:
        for tenant, frame in latest.items():
            stream.metrics.tenant_child(stream.metrics.entropy, tenant).set(frame["entropy"])
            cached = stream.codec.to_json("cog.global_frame", {**frame, "tenant_id": tenant})
            pipe.set(f"global_frame:{tenant}", json.dumps(cached, sort_keys=True),
                     ex=stream.settings.streams.integrator_frame_ttl_s)
        await pipe.execute()
    await stream.write_states(states)
    now = time.time()
    for out in outputs:
        occurred = out.out.event["occurred_at"]
        if hasattr(occurred, "timestamp"):
            sleeping = batch_params.get(out.tenant)
            stream.metrics.frame_latency.labels(sleeping[1] if sleeping else "awake").observe(
                max(0.0, now - occurred.timestamp()))


async def process_traced(batch: list[Incoming]) -> None:
    with stream.processing(batch):  # one span per batch, linked to every update's trace
        await process(batch)


@app.agent(stream.sources)
async def integrate(events: Any) -> None:
    await stream.run_batches(events, process_traced, BATCH, BATCH_WAIT_S)
