"""Crash recovery of the conversation worker, a clean stop mid-batch, and the ENABLE_COG_THREADS gate.

A worker SIGKILLed mid-stream and restarted recovers its session table from the changelog;
after deduplication by event id its outputs are exactly those an uninterrupted run gives (no
loss, no state applied twice: every memory write carries the session's message count). The
restarted worker gets no second chance: a stall or a lost record fails the test (the
faust-streaming recovery race behind both: streams/runtime/recovery.py). `--restart-runs 20`
repeats the SIGKILL test twenty times in a row (bench/restart_soak.sh runs it under CPU load).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from soma.clients import kafka_consumer
from soma.contracts.ids import derive_id
from soma.settings import Settings
from tests.integration.streams.conftest import LOGS
from tests.support.responders import PACED_RESPONDER, SLOW_RESPONDER
from tests.support.streams import Bus, port_of, stream_logged, stream_process, wait_ready

SESSIONS, PER_SESSION = 10, 100


@pytest.fixture(scope="module")
def prepared(topics_ensured: Settings) -> Settings:
    return topics_ensured.replace(streams_session_timeout_s=6.0)


def _high_watermarks(settings: Settings, topic: str, partitions: int = 3) -> int:
    consumer = kafka_consumer(settings, f"probe-{uuid.uuid4().hex[:6]}")
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(settings.topic_name(topic), p), timeout=10)[1]
                   for p in range(partitions))
    finally:
        consumer.close()


def _stalled(settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port_of(settings, 'worker')}/readyz", timeout=5):
            return False
    except urllib.error.HTTPError as exc:  # 503: not ready; stalled or not?
        return bool(json.loads(exc.read() or b"{}").get("stalled"))
    except OSError:
        return False


def _conversation(tenant: str) -> tuple[list[dict[str, Any]], dict[str, tuple[str, int]]]:
    """SESSIONS interleaved sessions of PER_SESSION user messages, and (session, sequence) by memory write id."""
    ids: dict[str, tuple[str, int]] = {}
    events = []
    for n in range(SESSIONS * PER_SESSION):
        session, seq = f"s{n % SESSIONS}", n // SESSIONS + 1
        event_id = str(uuid.uuid4())
        ids[derive_id(event_id, "memory")] = (session, seq)
        events.append({"event_id": event_id, "tenant_id": tenant, "session_id": session, "sequence": seq,
                       "role": "user", "content": f"m{seq}"})
    return events, ids


def _conversation_sent(settings: Settings, tenant: str) -> tuple[Bus, dict[str, tuple[str, int]], int]:
    """`_conversation(tenant)` on chat.messages; the bus, the expected writes and the memory.writes end before."""
    bus = Bus(settings)
    events, ids = _conversation(tenant)
    bus.send_many("chat.messages", events, tenant)
    return bus, ids, _high_watermarks(settings, "memory.writes")


def _outputs_since(settings: Settings, before: int) -> int:
    return _high_watermarks(settings, "memory.writes") - before


def _wait_outputs(settings: Settings, before: int, at_least: int, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while _outputs_since(settings, before) < at_least:
        assert time.monotonic() < deadline, f"the worker produced fewer than {at_least} outputs in {timeout_s}s"
        time.sleep(0.02)


def _collect_after_restart(bus: Bus, settings: Settings, tenant: str, total: int) -> list[Any]:
    """Restart the worker once and read its outputs until all `total` are there; a stall reported by the
    restarted worker's readiness fails at once (no second restart: that would hide the defect)."""
    quick = settings.replace(streams_stall_after_s=10.0)
    probe_at = time.monotonic() + 2

    def done(writes: list[Any]) -> bool:
        nonlocal probe_at
        if len({e.value["event_id"] for e in writes}) >= total:
            return True
        if time.monotonic() >= probe_at:
            probe_at = time.monotonic() + 2
            assert not _stalled(quick), (f"the restarted worker reports a stall after "
                                         f"{len({e.value['event_id'] for e in writes})}/{total} outputs")
        return False

    with stream_logged("worker", quick, LOGS / f"worker-restarted-{uuid.uuid4().hex[:6]}.log"):
        return bus.collect("memory.writes", done, timeout_s=120, keep=lambda e: e.value.get("tenant_id") == tenant)


def _assert_each_applied_once(writes: list[Any], ids: dict[str, tuple[str, int]]) -> int:
    """No output lost or unexpected, a re-emitted one identical, every message applied once and in order;
    returns the number of re-emitted outputs."""
    by_id: dict[str, set[str]] = defaultdict(set)
    for write in writes:
        by_id[write.value["event_id"]].add(write.value["payload_json"])
    assert set(by_id) == set(ids)  # no loss, nothing unexpected
    assert all(len(payloads) == 1 for payloads in by_id.values())  # a re-emitted output is identical
    for event_id, payloads in by_id.items():
        payload = json.loads(next(iter(payloads)))
        session, seq = ids[event_id]
        assert payload["sequence"] == seq
        # Applied to its session exactly once and in order: the n-th message is the session's n-th.
        count = payload["session_message_count"]
        assert count == seq, f"{session}: message {seq} applied as the session's message #{count}"
    return len(writes) - len(ids)


def test_worker_killed_mid_stream_recovers_without_loss_or_double_apply(prepared: Settings, restart_run: int) -> None:
    """One SIGKILL mid-stream and one restart (`--restart-runs 20`: twenty in a row, each on the group's
    offsets and changelog as the run before left them)."""
    started = time.monotonic()
    tenant = f"crash-{uuid.uuid4().hex[:8]}"
    bus, ids, before = _conversation_sent(prepared, tenant)
    total = len(ids)
    paced = prepared.replace(worker_responder=PACED_RESPONDER)  # the kill lands mid-stream on an idle machine too
    with stream_logged("worker", paced, LOGS / f"worker-killed-{uuid.uuid4().hex[:6]}.log") as proc:
        wait_ready(prepared, "worker", timeout_s=90)
        _wait_outputs(prepared, before, total // 5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    written_at_kill = _outputs_since(prepared, before)
    assert written_at_kill < total, "the worker finished before the kill; the test proves nothing"
    writes = _collect_after_restart(bus, prepared, tenant, total)
    duplicates = _assert_each_applied_once(writes, ids)
    print(f"run {restart_run}: outputs at kill: {written_at_kill}/{total}; records after restart: {len(writes)} "
          f"({duplicates} duplicates removed by event id); {time.monotonic() - started:.1f}s")


def test_worker_sigtermed_mid_batch_finishes_it_and_loses_nothing(prepared: Settings) -> None:
    """SIGTERM while a batch is in flight: the worker finishes the events in hand, commits, and exits; the
    restarted worker goes on from there (nothing lost, nothing applied twice, nothing re-emitted)."""
    slow = prepared.replace(worker_responder=SLOW_RESPONDER)  # 10 ms a message: a 200-record batch takes 2 s
    tenant = f"term-{uuid.uuid4().hex[:8]}"
    bus, ids, before = _conversation_sent(slow, tenant)
    total = len(ids)
    log_file = LOGS / f"worker-sigtermed-{uuid.uuid4().hex[:6]}.log"
    with stream_logged("worker", slow, log_file) as proc:
        wait_ready(slow, "worker", timeout_s=90)
        _wait_outputs(slow, before, 30)  # the first batch is being worked on
        at_signal = _outputs_since(slow, before)
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=60)
    at_exit = _outputs_since(slow, before)
    log = log_file.read_text()
    assert "exiting without committing" not in log, "the worker did not finish its batch at shutdown"
    assert code == 0, f"the worker exited {code} on SIGTERM"
    assert at_signal < at_exit < total, (f"outputs at SIGTERM {at_signal}, at exit {at_exit}: "
                                         "no batch was finished after the signal, or nothing was left")
    writes = _collect_after_restart(bus, slow, tenant, total)
    duplicates = _assert_each_applied_once(writes, ids)
    assert duplicates == 0, f"{duplicates} outputs emitted again: the stop committed less than it finished"
    print(f"outputs at SIGTERM: {at_signal}, at exit: {at_exit}, after restart: {len(writes)}/{total}")


def test_cog_threads_off_consumes_and_commits_but_emits_nothing(prepared: Settings) -> None:
    off = prepared.replace(enable_cog_threads=False)
    bus = Bus(off)
    tenant = f"off-{uuid.uuid4().hex[:8]}"
    with stream_process("integrator", off, LOGS):
        wait_ready(off, "integrator", timeout_s=90)
        bus.send("cog.predictor_updates", {"tenant_id": tenant, "source_kind": "agent", "predictor_id": "p",
                                           "domain": "a", "confidence": 1.0}, tenant)
        group = kafka_consumer(off, f"{off.kafka.topic_prefix}soma-integrator")
        try:
            end = _high_watermarks(off, "cog.predictor_updates")
            tps = [TopicPartition(off.topic_name("cog.predictor_updates"), p) for p in range(3)]
            deadline = time.monotonic() + 60
            while sum(max(tp.offset, 0) for tp in group.committed(tps, timeout=10)) < end:
                assert time.monotonic() < deadline, "the integrator did not commit its input"
                time.sleep(0.5)
        finally:
            group.close()
    with pytest.raises(TimeoutError):
        bus.collect("cog.global_frame", lambda f: len(f) >= 1, timeout_s=3,
                    keep=lambda e: e.value.get("tenant_id") == tenant)
