"""segmenter: cog.global_frame -> cog.segments when a boundary is detected.

Run: `faust -A streams.segmenter worker`. Mode (threshold or hmm), dwell, drop threshold and
the HMM's probabilities come from the live config; with `ENABLE_COG_THREADS` off the stream
consumes and commits but emits nothing and changes no state.
"""

from __future__ import annotations

from typing import Any

from soma.contracts.ids import derive_id
from streams.app import StreamApp
from streams.logic.output import Output
from streams.logic.segment import SegmenterParams, SegmenterState, decide
from streams.runtime.records import Incoming

stream = StreamApp("segmenter", ["cog.global_frame"])
app = stream.app
tenants = stream.table("segmenter_tenants")


def params_for(tenant: str) -> SegmenterParams:
    p = stream.param
    return SegmenterParams(
        mode=str(p("segmenter_mode", tenant)),
        dwell=int(p("segmenter_dwell_frames", tenant)),
        drop=float(p("segmenter_drop_threshold", tenant)),
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


async def handle(record: Incoming) -> None:
    tenant = record.tenant
    if not stream.param("enable_cog_threads", tenant):
        return
    frame = dict(record.value)
    occurred = frame["occurred_at"]
    frame["occurred_at"] = int(occurred.timestamp() * 1000) if hasattr(occurred, "timestamp") else int(occurred)
    state = SegmenterState.from_dict(tenants.get(tenant))
    new_state, segments = decide(state, frame, params_for(tenant))
    if new_state == state:
        stream.metrics.duplicates.inc()
        return
    outputs: list[Output] = []
    for index, fields in enumerate(segments):
        segment_id = derive_id(record.event_id, f"segment:{index}")
        outputs.append(Output("cog.segments", {
            "event_id": segment_id, "segment_id": segment_id, "occurred_at": occurred, **fields,
        }, tenant))
        stream.metrics.tenant_child(stream.metrics.segments, tenant, fields["boundary_kind"]).inc()
    await stream.emit(outputs, cause=record)
    await stream.write_state(tenants, record.partition, {tenant: new_state.to_dict()})


@app.agent(stream.sources)
async def segment(events: Any) -> None:
    await stream.run(events, handle)
