"""The five streams as real `faust ... worker` processes against Kafka, PostgreSQL, Redis (and OPA).

One module-scoped set of workers serves every test here (worker start-up takes seconds);
each test uses its own tenants, so tests do not see each other's events.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from soma.clients import database_engine, kafka_producer, redis_client
from soma.contracts.ids import derive_id
from soma.ops.supervisor.spec import STREAMS as TOPOLOGY
from soma.settings import Settings
from tests.integration.streams.conftest import LOGS
from tests.support.opa import opa_decisions, opa_server
from tests.support.procs import run_soma, wait_for
from tests.support.streams import Bus, port_of, stream_process, wait_ready

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
    with ExitStack() as stack:
        for name in STREAMS:
            stack.enter_context(stream_process(name, own, LOGS))
        for name in STREAMS:
            wait_ready(own, name, timeout_s=90)
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


def _frame(tenant: str, seq: int, leader: str, weight: float) -> dict[str, Any]:
    other = "zz" if leader != "zz" else "yy"
    return {"tenant_id": tenant, "frame_seq": seq, "leader": leader, "previous_leader": None,
            "weights": {leader: weight, other: 1 - weight}, "temperature": 1.0, "entropy": 0.5, "alpha": 0.5,
            "occurred_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seq)}


def test_scripted_frames_give_exactly_the_expected_segments(bus: Bus) -> None:
    tenant = _tenant("seg")
    script = [("a", 0.9), ("a", 0.9), ("b", 0.7), ("a", 0.8), ("b", 0.7), ("b", 0.7), ("b", 0.75),
              ("b", 0.3), ("b", 0.35), ("c", 0.8), ("c", 0.8),
              ("end", 0.9), ("end", 0.9)]  # the marker: its boundary comes after every other one
    bus.send_many("cog.global_frame", [_frame(tenant, i + 1, lead, w) for i, (lead, w) in enumerate(script)], tenant)
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


def _applied_config_updates(settings: Settings, stream_name: str) -> float:
    url = f"http://127.0.0.1:{port_of(settings, stream_name)}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(("soma_config_updates_applied_total ", "soma_config_updates_applied_total{")):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_segmenter_switches_to_hmm_mode_live(running: Settings, bus: Bus) -> None:
    tenant = _tenant("hmm")
    before = _applied_config_updates(running, "segmenter")
    for name, value in (("SEGMENTER_HMM_ENTER_P", "0.2"), ("SEGMENTER_MODE", "hmm")):
        result = run_soma(running, "config", "set", name, value, "--tenant", tenant)
        assert result.returncode == 0, result.stderr
    wait_for(lambda: _applied_config_updates(running, "segmenter") >= before + 2, 30,
             what="the segmenter applying both config updates")
    script = [("a", 0.9), ("a", 0.9), ("b", 0.9), ("a", 0.9), ("a", 0.9)]
    bus.send_many("cog.global_frame", [_frame(tenant, i + 1, lead, w) for i, (lead, w) in enumerate(script)], tenant)
    segments = bus.collect("cog.segments", lambda s: len(s) >= 1, keep=_of(tenant))
    # The same frames give a leader_change in threshold mode (dwell 2 is not met here, so no
    # threshold segment at all): only the live switch to HMM explains an `hmm` boundary.
    assert [s.value["boundary_kind"] for s in segments] == ["hmm"]
    assert segments[0].value["start_frame_seq"] == 1


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


def test_unknown_tool_yields_an_error_result(bus: Bus) -> None:
    tenant = _tenant("tool")
    bus.send("tool.requests", {"tenant_id": tenant, "session_id": "s", "call_id": "x", "tool": "no-such-tool",
                               "arguments_json": "{}", "requested_by": "m"}, tenant)
    results = bus.collect("tool.results", lambda r: len(r) >= 1, keep=_of(tenant))
    assert results[0].value["status"] == "error"
    assert "unknown tool" in results[0].value["error"]


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
