"""segmenter: cog.global_frame -> cog.segments when a boundary is detected.

Run: `faust -A streams.segmenter worker`. Mode (threshold or hmm), dwell, drop threshold and
the HMM's probabilities come from the live config; with `ENABLE_COG_THREADS` off the stream
consumes and commits but emits nothing and changes no state (`soma_segmenter_frames_skipped_total`).
With `ENABLE_SLEEP` on for a tenant, the dwell and drop threshold are its sleep state's (its sleep
mirror's, docs/sleep.md).

Frames are taken in batches and folded into the batch's working tenant states in order (per-key
order holds: a tenant's frames share a partition); the segments of every frame are handed to the
producer, then all awaited, and only then the tenant states are written (changelog awaited), as
in the worker: a restart never skips a frame whose segment was lost.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from soma.contracts.ids import derive_id
from streams.app import StreamApp
from streams.logic.output import Output
from streams.logic.segment import SegmenterParams, SegmenterState, decide
from streams.runtime.records import Incoming
from streams.runtime.state import StagedStates

stream = StreamApp("segmenter", ["cog.global_frame"], sleep=True)
app = stream.app
tenants = stream.table("segmenter_tenants")
BATCH = 500  # most frames per batch (one delivery wait and one state write per tenant and batch)
BATCH_WAIT_S = 0.02  # longest wait to fill a batch (adds at most this to the frame-to-segment latency)


def params_for(tenant: str) -> SegmenterParams:
    p = stream.param
    dwell, drop = int(p("segmenter_dwell_frames", tenant)), float(p("segmenter_drop_threshold", tenant))
    if stream.sleep_enabled(tenant):
        eff = stream.sleep_effective(tenant)
        dwell, drop = eff.dwell_frames, eff.drop_threshold
    return SegmenterParams(
        mode=str(p("segmenter_mode", tenant)),
        dwell=dwell,
        drop=drop,
        enter_p=float(p("segmenter_hmm_enter_p", tenant)),
        exit_p=float(p("segmenter_hmm_exit_p", tenant)),
        emit_boundary=float(p("segmenter_hmm_emit_boundary", tenant)),
        emit_steady=float(p("segmenter_hmm_emit_steady", tenant)),
        window=int(p("segmenter_hmm_window", tenant)),
        dedupe_window=stream.settings.streams.dedupe_window,
    )


def _show_mode() -> None:
    mode = str(stream.param("segmenter_mode"))
    for name in ("threshold", "hmm"):
        stream.metrics.segmenter_mode.labels(name).set(1 if name == mode else 0)


stream.on_config.append(_show_mode)
_show_mode()


async def process(records: list[Incoming]) -> None:
    """Fold a batch of frames into the tenants' working states (a failing frame is dead-lettered), then every
    segment acknowledged, then the states written: one delivery wait and one state write per batch."""
    staged = StagedStates(tenants, SegmenterState.from_dict)
    deliveries: list[Awaitable[Any]] = []
    batch_params: dict[str, SegmenterParams | None] = {}  # live config changes between batches, not within one

    async def stage(record: Incoming) -> None:
        tenant = record.tenant
        if tenant not in batch_params:
            batch_params[tenant] = params_for(tenant) if stream.param("enable_cog_threads", tenant) else None
        params = batch_params[tenant]
        if params is None:
            stream.metrics.tenant_child(stream.metrics.frames_skipped, tenant).inc()
            return
        frame = dict(record.value)
        occurred = frame["occurred_at"]
        frame["occurred_at"] = int(occurred.timestamp() * 1000) if hasattr(occurred, "timestamp") else int(occurred)
        state = staged.get(tenant)
        new_state, segments = decide(state, frame, params)
        if new_state == state:
            stream.metrics.duplicates.inc()
            return
        outputs: list[Output] = []
        for index, fields in enumerate(segments):
            segment_id = derive_id(record.event_id, f"segment:{index}")
            outputs.append(Output("cog.segments", {
                "event_id": segment_id, "segment_id": segment_id, "occurred_at": occurred, **fields,
            }, tenant))
        deliveries.extend(await stream.send(outputs, cause=record))
        staged.put(tenant, new_state, record.partition)  # only once its segments are with the producer
        for fields in segments:
            stream.metrics.tenant_child(stream.metrics.segments, tenant, fields["boundary_kind"]).inc()

    for record in records:
        await stream.handle_traced(record, stage)
    await stream.acknowledged(deliveries, "segments")
    await stream.write_states(staged)


@app.agent(stream.sources)
async def segment(events: Any) -> None:
    await stream.run_batches(events, process, BATCH, BATCH_WAIT_S)
