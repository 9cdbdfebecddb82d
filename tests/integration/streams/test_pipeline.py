"""The five streams as real `faust ... worker` processes against Kafka, PostgreSQL, Redis (and OPA).

One module-scoped set of workers serves every test here (worker start-up takes seconds);
each test uses its own tenants, so tests do not see each other's events.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from soma.clients import database_engine, kafka_producer, redis_client
from soma.contracts.ids import derive_id
from soma.ops.supervisor.spec import STREAMS as TOPOLOGY
from soma.settings import Settings
from tests.integration.streams.conftest import LOGS
from tests.support.cog import SEGMENTING, assert_first_segment_from, assert_passed_over, send_script
from tests.support.opa import opa_decisions, opa_server
from tests.support.procs import run_soma, wait_for
from tests.support.streams import Bus, scrape, streams_running

STREAMS = tuple(stream.name for stream in TOPOLOGY)


@pytest.fixture(scope="module")
def opa_url(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with opa_server(stack, tmp_path_factory.mktemp("opa") / "opa.log") as url:
        yield url


@pytest.fixture(scope="module")
def running(migrated: Settings, opa_url: str) -> Iterator[Settings]:
    own = migrated.replace(
        enable_cog_threads=True,
        worker_responder="streams.logic.responders:EchoResponder",
        opa_url=opa_url,
        opa_timeout_s=2.0,
        segmenter_dwell_frames=2,
        segmenter_drop_threshold=0.3,
    )
    with streams_running(STREAMS, own, LOGS):
        yield own


@pytest.fixture(scope="module")
def bus(running: Settings) -> Bus:
    return Bus(running)


def _tenant(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def _update(tenant: str, domain: str, confidence: float) -> dict[str, Any]:
    return {"tenant_id": tenant, "source_kind": "state", "predictor_id": "p1", "domain": domain,
            "confidence": confidence}


def _of(tenant: str) -> Any:
    return lambda e: e.value.get("tenant_id") == tenant


def test_predictor_updates_give_the_leader_in_redis_and_on_global_frame(running: Settings, bus: Bus) -> None:
    tenant = _tenant("integ")
    for domain, confidence in (("plan", 1.0), ("act", 3.0), ("plan", 0.5)):
        bus.send("cog.predictor_updates", _update(tenant, domain, confidence), tenant)
    frames = bus.collect("cog.global_frame", lambda f: len(f) >= 3, keep=_of(tenant))
    assert [f.value["frame_seq"] for f in frames] == [1, 2, 3]
    assert [f.value["leader"] for f in frames] == ["plan", "act", "act"]
    assert abs(sum(frames[-1].value["weights"].values()) - 1.0) < 1e-9
    # The frame is delivered before the cache is written (a frame is never cached ahead of Kafka).
    def cached_frame() -> Any:
        cached = redis_client(running).get(f"global_frame:{tenant}")
        return json.loads(cached) if cached is not None else None

    wait_for(lambda: (cached_frame() or {}).get("event_id") == frames[-1].value["event_id"], 10,
             what="the last frame in Redis")
    assert cached_frame()["leader"] == "act"
    assert 0 < redis_client(running).ttl(f"global_frame:{tenant}") <= running.streams.integrator_frame_ttl_s
    # Its metrics: one leader change (plan -> act; the first leader is no change), the last frame's entropy,
    # a latency for every frame (the first frames of this module, so the histogram holds exactly these).
    wait_for(lambda: scrape(running, "integrator").value("soma_integrator_update_to_frame_seconds_count") >= 3, 30,
             what="the frame latencies observed")
    metrics = scrape(running, "integrator")
    assert metrics.value("soma_integrator_leader_switches_total", tenant=tenant) == 1
    assert metrics.value("soma_integrator_vetoes_total", tenant=tenant) == 0
    assert metrics.value("soma_integrator_softmax_entropy", tenant=tenant) == pytest.approx(frames[-1].value["entropy"])
    # Not exactly 3: updates another module left on the shared topics may be this integrator's first too.
    assert metrics.value("soma_integrator_update_to_frame_seconds_count", sleep_state="awake") >= 3
    assert metrics.value("soma_integrator_update_to_frame_seconds_bucket", le="+Inf") == 3
    assert metrics.value("soma_integrator_updates_skipped_total", tenant=tenant) == 0
    assert metrics.value("soma_stream_events_total", topic="cog.predictor_updates", tenant=tenant) == 3


def test_opa_vetoes_a_restricted_leader(running: Settings, bus: Bus) -> None:
    tenant = _tenant("veto")
    before = opa_decisions(running)
    bus.send("cog.predictor_updates", _update(tenant, "plan", 1.0), tenant)
    bus.send("cog.predictor_updates", _update(tenant, "restricted-x", 50.0), tenant)
    bus.send("cog.predictor_updates", _update(tenant, "act", 100.0), tenant)
    frames = bus.collect("cog.global_frame", lambda f: len(f) >= 3, keep=_of(tenant))
    assert [(f.value["leader"], f.value["vetoed"]) for f in frames] == [
        ("plan", False), ("plan", True), ("act", False),
    ]
    after = opa_decisions(running)  # counted before the frames were sent; a new tenant: no cache hit
    assert after.get("veto", 0) - before.get("veto", 0) == 1
    assert after.get("allow", 0) - before.get("allow", 0) == 1
    metrics = scrape(running, "integrator")
    assert metrics.value("soma_integrator_vetoes_total", tenant=tenant) == 1
    assert metrics.value("soma_integrator_leader_switches_total", tenant=tenant) == 1  # the veto is no switch


def test_config_update_changes_the_temperature_live(running: Settings, bus: Bus) -> None:
    tenant = _tenant("temp")
    bus.send("cog.predictor_updates", _update(tenant, "a", 1.0), tenant)
    bus.collect("cog.global_frame", lambda f: len(f) >= 1, keep=_of(tenant))
    result = run_soma(running, "config", "set", "INTEGRATOR_TEMPERATURE", "0.05", "--tenant", tenant)
    assert result.returncode == 0, result.stderr

    def frame_with_new_temperature() -> bool:
        bus.send("cog.predictor_updates", _update(tenant, "b", 1.1), tenant)
        frames = bus.collect("cog.global_frame", lambda f: len(f) >= 1, timeout_s=20,
                             keep=lambda e: _of(tenant)(e) and e.value["temperature"] == 0.05)
        return bool(frames)

    assert frame_with_new_temperature()


def test_integrator_turned_off_live_counts_the_updates_it_passes_over(running: Settings, bus: Bus) -> None:
    tenant = _tenant("integoff")
    _set_live(running, tenant, ("ENABLE_COG_THREADS", "false"), stream_name="integrator")
    for domain, confidence in (("plan", 1.0), ("act", 3.0)):
        bus.send("cog.predictor_updates", _update(tenant, domain, confidence), tenant)
    wait_for(lambda: scrape(running, "integrator").value("soma_integrator_updates_skipped_total", tenant=tenant) >= 2,
             30, what="the integrator passing over the updates")
    metrics = scrape(running, "integrator")
    assert metrics.value("soma_integrator_updates_skipped_total", tenant=tenant) == 2
    assert metrics.value("soma_stream_events_total", topic="cog.predictor_updates", tenant=tenant) == 2
    # Back on: the next update gives the tenant's first frame (none was emitted, no state kept while off).
    _set_live(running, tenant, ("ENABLE_COG_THREADS", "true"), stream_name="integrator")
    bus.send("cog.predictor_updates", _update(tenant, "plan", 1.0), tenant)
    frames = bus.collect("cog.global_frame", lambda f: len(f) >= 1, keep=_of(tenant))
    assert [(f.value["frame_seq"], f.value["leader"]) for f in frames] == [(1, "plan")]
    assert scrape(running, "integrator").value("soma_integrator_updates_skipped_total", tenant=tenant) == 2


def test_invalid_config_update_is_rejected_and_audited(running: Settings, bus: Bus) -> None:
    from soma.live_config import checksum

    tenant = _tenant("badcfg")
    event = {"name": "INTEGRATOR_ALPHA", "value": "a lot", "scope_tenant": tenant, "version": 1,
             "checksum": checksum("a lot"), "author": "test"}
    update_id = bus.send("config_updates", event, tenant)
    audits = bus.collect(
        "outbox.audit", lambda a: len(a) >= 1,
        keep=lambda e: e.value.get("action") == "config.rejected" and e.value["event_id"] == derive_id(
            update_id, "config-rejected:integrator"),
    )
    assert "INTEGRATOR_ALPHA" in json.loads(audits[0].value["details_json"])["reason"]


def test_scripted_frames_give_exactly_the_expected_segments(running: Settings, bus: Bus) -> None:
    tenant = _tenant("seg")
    script = [("a", 0.9), ("a", 0.9), ("b", 0.7), ("a", 0.8), ("b", 0.7), ("b", 0.7), ("b", 0.75),
              ("b", 0.3), ("b", 0.35), ("c", 0.8), ("c", 0.8),
              ("end", 0.9), ("end", 0.9)]  # the marker: its boundary comes after every other one
    send_script(bus, tenant, 1, script)
    # Segments of one tenant are ordered: once the marker's is there, every earlier one is too.
    segments = bus.collect("cog.segments", lambda s: any(x.value["leader_after"] == "end" for x in s),
                           keep=_of(tenant))
    got = [(s.value["boundary_kind"], s.value["start_frame_seq"], s.value["end_frame_seq"],
            s.value["leader_before"], s.value["leader_after"]) for s in segments]
    assert got == [
        ("leader_change", 1, 4, "a", "b"),
        ("confidence_drop", 5, 7, "b", "b"),
        ("leader_change", 8, 9, "b", "c"),
        ("leader_change", 10, 11, "c", "end"),
    ]
    metrics = scrape(running, "segmenter")
    assert metrics.label_names("soma_segmenter_segments_total") == {frozenset({"service", "kind", "tenant"})}
    assert metrics.value("soma_segmenter_segments_total", kind="leader_change", tenant=tenant) == 3
    assert metrics.value("soma_segmenter_segments_total", kind="confidence_drop", tenant=tenant) == 1
    assert metrics.value("soma_segmenter_frames_skipped_total", tenant=tenant) == 0
    assert metrics.value("soma_stream_events_total", topic="cog.global_frame", tenant=tenant) == len(script)
    assert (metrics.value("soma_segmenter_mode", mode="threshold"), metrics.value("soma_segmenter_mode", mode="hmm")) \
        == (1, 0)


def _applied_config_updates(settings: Settings, stream_name: str) -> float:
    return scrape(settings, stream_name).value("soma_config_updates_applied_total")


def _set_live(settings: Settings, tenant: str, *updates: tuple[str, str], stream_name: str = "segmenter") -> None:
    """Tenant-scoped live config updates, returned once `stream_name` has applied them all."""
    before = _applied_config_updates(settings, stream_name)
    for name, value in updates:
        result = run_soma(settings, "config", "set", name, value, "--tenant", tenant)
        assert result.returncode == 0, result.stderr
    wait_for(lambda: _applied_config_updates(settings, stream_name) >= before + len(updates), 30,
             what=f"the {stream_name} applying {len(updates)} config update(s)")


def test_segmenter_switches_to_hmm_mode_live(running: Settings, bus: Bus) -> None:
    tenant = _tenant("hmm")
    _set_live(running, tenant, ("SEGMENTER_HMM_ENTER_P", "0.2"), ("SEGMENTER_MODE", "hmm"))
    script = [("a", 0.9), ("a", 0.9), ("b", 0.9), ("a", 0.9), ("a", 0.9)]
    send_script(bus, tenant, 1, script)
    segments = bus.collect("cog.segments", lambda s: len(s) >= 1, keep=_of(tenant))
    # The same frames give a leader_change in threshold mode (dwell 2 is not met here, so no
    # threshold segment at all): only the live switch to HMM explains an `hmm` boundary.
    assert [s.value["boundary_kind"] for s in segments] == ["hmm"]
    assert segments[0].value["start_frame_seq"] == 1
    assert scrape(running, "segmenter").value("soma_segmenter_segments_total", kind="hmm", tenant=tenant) == 1


def test_segmenter_turned_off_live_consumes_and_counts_but_emits_nothing(running: Settings, bus: Bus) -> None:
    tenant = _tenant("off")
    _set_live(running, tenant, ("ENABLE_COG_THREADS", "false"))
    send_script(bus, tenant, 1)
    assert_passed_over(running, tenant, len(SEGMENTING))
    _set_live(running, tenant, ("ENABLE_COG_THREADS", "true"))
    send_script(bus, tenant, len(SEGMENTING) + 1)
    assert_first_segment_from(running, bus, tenant, len(SEGMENTING) + 1, skipped=len(SEGMENTING))


def _message(tenant: str, session: str, seq: int, content: str, calls: list[dict[str, str]] | None = None) -> dict:
    return {"tenant_id": tenant, "session_id": session, "sequence": seq, "role": "user", "content": content,
            "tool_calls": calls}


def test_chat_tool_call_round_trip_lands_in_the_replica(running: Settings, bus: Bus) -> None:
    tenant, session = _tenant("chat"), "s1"
    call = {"call_id": "c1", "tool": "calc", "arguments_json": json.dumps({"op": "add", "a": 40, "b": 2})}
    msg_id = bus.send("chat.messages", _message(tenant, session, 1, "what is 40+2?", [call]), tenant)
    requests = bus.collect("tool.requests", lambda r: len(r) >= 1, keep=_of(tenant))
    assert requests[0].value["event_id"] == derive_id(msg_id, "tool:c1")
    results = bus.collect("tool.results", lambda r: len(r) >= 1, keep=_of(tenant))
    assert (results[0].value["status"], results[0].value["output"]) == ("ok", "42")
    # role=tool message, then the echo responder's reply once no call is pending.
    messages = bus.collect("chat.messages", lambda m: len(m) >= 3, keep=_of(tenant))
    roles = [(m.value["role"], m.value["content"], m.value["sequence"]) for m in messages]
    assert roles == [("user", "what is 40+2?", 1), ("tool", "42", 2), ("assistant", "echo: 42", 3)]
    engine = database_engine(running)
    try:
        def rows() -> list[Any]:
            with engine.connect() as conn:
                return list(conn.execute(text(
                    "SELECT memory_key, payload, deleted FROM memory_replica WHERE tenant_id = :t ORDER BY memory_key"
                ), {"t": tenant}))

        wait_for(lambda: len(rows()) == 3, 60, what="3 replica rows")
        assert [(r.memory_key, r.payload["role"]) for r in rows()] == [
            (f"chat:s1:{1:012d}", "user"), (f"chat:s1:{2:012d}", "tool"), (f"chat:s1:{3:012d}", "assistant"),
        ]
    finally:
        engine.dispose()
    assert scrape(running, "tools").value("soma_tools_calls_total", tool="calc", status="ok", tenant=tenant) == 1


def test_unknown_tool_yields_an_error_result_and_every_call_is_counted(running: Settings, bus: Bus) -> None:
    tenant = _tenant("tool")

    def request(call: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {"tenant_id": tenant, "session_id": "s", "call_id": call, "tool": tool,
                "arguments_json": json.dumps(arguments), "requested_by": "m"}

    calls = [request("x", "no-such-tool", {}), request("y", "no-such-tool-either", {}),
             *(request(f"c{n}", "calc", {"op": "add", "a": n, "b": 1}) for n in range(3))]
    bus.send_many("tool.requests", calls, tenant)
    results = bus.collect("tool.results", lambda r: len(r) >= len(calls), keep=_of(tenant))
    unknown = [r.value for r in results if r.value["tool"] != "calc"]
    assert [r["status"] for r in unknown] == ["error", "error"]
    assert all("unknown tool" in r["error"] for r in unknown)
    # Each call counted once, as its status, unregistered names as `other` (results are sent after the count).
    metrics = scrape(running, "tools")
    assert metrics.label_names("soma_tools_calls_total") == {frozenset({"service", "tool", "status", "tenant"})}
    assert metrics.value("soma_tools_calls_total", tool="other", status="error", tenant=tenant) == 2
    assert metrics.value("soma_tools_calls_total", tool="calc", status="ok", tenant=tenant) == 3
    assert metrics.value("soma_tools_calls_total", tenant=tenant) == len(calls)


def test_replica_is_idempotent_and_a_delete_is_not_resurrected(running: Settings, bus: Bus) -> None:
    tenant = _tenant("repl")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    upsert = {"tenant_id": tenant, "memory_key": "k", "operation": "upsert", "payload_json": '{"v": 1}',
              "occurred_at": t0, "event_id": str(uuid.uuid4())}
    delete = {"tenant_id": tenant, "memory_key": "k", "operation": "delete", "payload_json": None,
              "occurred_at": t0 + timedelta(seconds=2), "event_id": str(uuid.uuid4())}
    older = {**upsert, "event_id": str(uuid.uuid4()), "payload_json": '{"v": 0}',
             "occurred_at": t0 + timedelta(seconds=1)}
    marker = {**upsert, "memory_key": "done", "event_id": str(uuid.uuid4())}
    for event in (upsert, upsert, delete, older, upsert, marker):
        bus.send("memory.writes", event, tenant)
    engine = database_engine(running)
    try:
        def row(key: str) -> Any:
            with engine.connect() as conn:
                return conn.execute(text(
                    "SELECT deleted, payload, last_event_id FROM memory_replica"
                    " WHERE tenant_id = :t AND memory_key = :k"
                ), {"t": tenant, "k": key}).first()

        wait_for(lambda: row("done") is not None, 60, what="marker row")
        final = row("k")
        assert final.deleted is True
        assert final.last_event_id == delete["event_id"]
    finally:
        engine.dispose()
    # The lag is now - occurred_at of the tenant's last applied write (the marker, written at t0).
    lag = scrape(running, "replicator").value("soma_replicator_lag_seconds", tenant=tenant)
    assert lag == pytest.approx(time.time() - t0.timestamp(), abs=120)


def test_replica_lag_follows_applied_writes_only(running: Settings, bus: Bus) -> None:
    tenant = _tenant("lag")

    def write(key: str, occurred_at: datetime) -> dict[str, Any]:
        return {"tenant_id": tenant, "memory_key": key, "operation": "upsert", "payload_json": '{"v": 1}',
                "occurred_at": occurred_at, "event_id": str(uuid.uuid4())}

    def lag() -> float:
        return scrape(running, "replicator").value("soma_replicator_lag_seconds", tenant=tenant)

    fresh = write("k", datetime.now(UTC))
    bus.send("memory.writes", fresh, tenant)
    wait_for(lambda: scrape(running, "replicator").matching("soma_replicator_lag_seconds", tenant=tenant) != [], 60,
             what="the replicator's lag for the tenant")
    assert 0 <= lag() < 60
    # A write older than the row it would replace is not applied: it does not make the replica look behind.
    duplicates = scrape(running, "replicator").value("soma_stream_duplicates_total")
    bus.send("memory.writes", write("k", datetime.now(UTC) - timedelta(hours=1)), tenant)
    wait_for(lambda: scrape(running, "replicator").value("soma_stream_duplicates_total") >= duplicates + 1, 60,
             what="the stale write passed over")
    assert 0 <= lag() < 60


def test_poison_record_goes_to_the_dlq_and_the_stream_goes_on(running: Settings, bus: Bus) -> None:
    tenant = _tenant("poison")
    producer = kafka_producer(running)
    producer.produce(running.topic_name("chat.messages"), key=f"{tenant}:s".encode(), value=b"\x00garbage",
                     headers=[("tenant", tenant.encode())])
    producer.flush(10)
    bus.send("chat.messages", _message(tenant, "s", 1, "still alive"), tenant)
    dead = bus.collect("dlq", lambda d: len(d) >= 1, keep=_of(tenant))
    assert dead[0].value["stream"] == "worker"
    assert dead[0].value["source_topic"] == "chat.messages"
    assert dead[0].value["original_value"] == b"\x00garbage"
    assert dead[0].value["error_type"] == "decode"
    replies = bus.collect("chat.messages", lambda m: len(m) >= 1,
                          keep=lambda e: _of(tenant)(e) and e.value["role"] == "assistant")
    assert replies[0].value["content"] == "echo: still alive"
