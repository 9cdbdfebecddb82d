"""The segmenter started with `ENABLE_COG_THREADS` off (the default), as a real `faust ... worker`.

Off, it consumes and commits every frame but emits no segment and keeps no state, and says so in
`soma_segmenter_frames_skipped_total`; a tenant-scoped live update turns it on without a restart.
(On at start and turned off live: tests/integration/streams/test_pipeline.py.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from soma.settings import Settings
from tests.integration.streams.conftest import LOGS
from tests.support.cog import SEGMENTING, assert_first_segment_from, assert_passed_over, send_script
from tests.support.procs import run_soma, wait_for
from tests.support.streams import Bus, scrape, stream_process, wait_ready


@pytest.fixture(scope="module")
def segmenter_off(topics_ensured: Settings) -> Iterator[Settings]:
    own = topics_ensured.replace(enable_cog_threads=False, segmenter_dwell_frames=2)
    with stream_process("segmenter", own, LOGS):
        wait_ready(own, "segmenter", timeout_s=90)
        yield own


def test_off_at_start_consumes_without_segments_then_turns_on_live(segmenter_off: Settings) -> None:
    settings, bus, tenant = segmenter_off, Bus(segmenter_off), f"cogoff-{uuid.uuid4().hex[:8]}"
    send_script(bus, tenant, 1)
    assert_passed_over(settings, tenant, len(SEGMENTING))

    applied = scrape(settings, "segmenter").value("soma_config_updates_applied_total")
    result = run_soma(settings, "config", "set", "ENABLE_COG_THREADS", "true", "--tenant", tenant)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: scrape(settings, "segmenter").value("soma_config_updates_applied_total") >= applied + 1, 30,
             what="the segmenter applying the live update")
    send_script(bus, tenant, len(SEGMENTING) + 1)
    assert_first_segment_from(settings, bus, tenant, len(SEGMENTING) + 1, skipped=len(SEGMENTING))
