"""Global frames for the segmenter's integration tests, and the checks of its `ENABLE_COG_THREADS` off path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from soma.settings import Settings
from tests.support.procs import wait_for
from tests.support.streams import Bus, scrape

SEGMENTING = [("a", 0.9), ("a", 0.9), ("a", 0.9), ("b", 0.9), ("b", 0.9), ("b", 0.9)]  # one leader_change (dwell 2)


def frame(tenant: str, seq: int, leader: str, weight: float) -> dict[str, Any]:
    other = "zz" if leader != "zz" else "yy"
    return {"tenant_id": tenant, "frame_seq": seq, "leader": leader, "previous_leader": None,
            "weights": {leader: weight, other: 1 - weight}, "temperature": 1.0, "entropy": 0.5, "alpha": 0.5,
            "occurred_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seq)}


def send_script(bus: Bus, tenant: str, first_seq: int, script: list[tuple[str, float]] = SEGMENTING) -> None:
    bus.send_many("cog.global_frame", [frame(tenant, first_seq + i, lead, w) for i, (lead, w) in enumerate(script)],
                  tenant)


def assert_passed_over(settings: Settings, tenant: str, count: int) -> None:
    """The segmenter consumed `count` frames of the tenant, all counted as skipped, and segmented none."""
    wait_for(lambda: scrape(settings, "segmenter").value("soma_segmenter_frames_skipped_total", tenant=tenant)
             >= count, 60, what="the segmenter passing over the frames")
    metrics = scrape(settings, "segmenter")
    assert metrics.value("soma_segmenter_frames_skipped_total", tenant=tenant) == count
    assert metrics.value("soma_stream_events_total", topic="cog.global_frame", tenant=tenant) == count
    assert metrics.value("soma_segmenter_segments_total", tenant=tenant) == 0


def assert_first_segment_from(settings: Settings, bus: Bus, tenant: str, first_seq: int, skipped: int) -> None:
    """`SEGMENTING` sent from `first_seq` on gave the tenant's first segment: one tenant's segments are ordered,
    so a segment of the frames passed over before would have come first. The skipped count did not move."""
    segments = bus.collect("cog.segments", lambda s: len(s) >= 1, keep=lambda e: e.value["tenant_id"] == tenant)
    assert [(s.value["boundary_kind"], s.value["start_frame_seq"]) for s in segments] == [
        ("leader_change", first_seq)]
    metrics = scrape(settings, "segmenter")
    assert metrics.value("soma_segmenter_segments_total", kind="leader_change", tenant=tenant) == 1
    assert metrics.value("soma_segmenter_frames_skipped_total", tenant=tenant) == skipped
