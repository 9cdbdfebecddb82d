"""The TTL wake is written exactly once across a SIGKILL of the integrator (a real `faust ... worker`).

A tenant sleeps until a few seconds from now; the integrator is SIGKILLed around that time (a
second before, at, or a second after it, by run: `--restart-runs 3` covers all three), so the
wake was written by the killed process, or is left to the restarted one. Either way cog.sleep
holds one ttl_wake for seq 2, and the restarted integrator holds the tenant awake.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

from soma.settings import Settings
from tests.integration.streams.conftest import LOGS
from tests.support.procs import wait_for
from tests.support.sleep import cached, request, transitions
from tests.support.streams import Bus, scrape, stream_logged, wait_ready

SLEEP_S = 8.0  # from the request to the until: room for the request to be decided first on a busy machine


def test_ttl_wake_is_written_once_across_a_sigkill_of_the_integrator(topics_ensured: Settings,
                                                                      restart_run: int) -> None:
    started = time.monotonic()
    own = topics_ensured.replace(enable_cog_threads=True, enable_sleep=True, streams_session_timeout_s=6.0)
    bus, tenant = Bus(own), f"ttl-{uuid.uuid4().hex[:8]}"
    kill_offset_s = (restart_run - 1) % 3 - 1.0  # -1, 0, +1 s around the until
    with stream_logged("integrator", own, LOGS / f"integrator-ttl-{uuid.uuid4().hex[:6]}.log") as proc:
        wait_ready(own, "integrator", timeout_s=90)
        until = datetime.now(UTC) + timedelta(seconds=SLEEP_S)
        request(bus, tenant, "light", until=until)
        (slept,) = transitions(bus, tenant, 1)
        assert slept["to_state"] == "light"
        assert abs((slept["until"] - until).total_seconds()) < 0.001  # timestamp-millis
        kill_at = until + timedelta(seconds=kill_offset_s)
        wait_for(lambda: datetime.now(UTC) >= kill_at, SLEEP_S + 5, interval_s=0.05, what="the kill time")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    with stream_logged("integrator", own, LOGS / f"integrator-ttl-restarted-{uuid.uuid4().hex[:6]}.log"):
        wait_ready(own, "integrator", timeout_s=90)
        woke = transitions(bus, tenant, 2)[1]
        assert (woke["seq"], woke["from_state"], woke["to_state"], woke["reason"], woke["request_id"]) == (
            2, "light", "awake", "ttl_wake", None)
        wait_for(lambda: scrape(own, "integrator").value("soma_sleep_state", tenant=tenant, state="awake") == 1, 30,
                 what="the restarted integrator holding the tenant awake")
        assert cached(own, tenant)["seq"] == 2
        # A later transition marks the end of what the wake could have written: all of it is before seq 3.
        request(bus, tenant, "deep")
        records = transitions(bus, tenant, 3)
    assert [(r["seq"], r["reason"]) for r in records] == [(1, "manual"), (2, "ttl_wake"), (3, "manual")]
    print(f"run {restart_run}: killed {kill_offset_s:+.0f}s from the until; {time.monotonic() - started:.1f}s")
