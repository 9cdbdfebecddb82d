"""A valid sample event for every catalog topic (envelope fields left for the codec to fill): tests, benchmarks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def sample(topic: str, tenant: str = "tenant-a", n: int = 1) -> dict[str, Any]:
    session = f"session-{n}"
    values: dict[str, dict[str, Any]] = {
        "chat.messages": {
            "session_id": session, "sequence": n, "role": "user", "content": f"hello {n}",
            "tool_calls": [{"call_id": f"call-{n}", "tool": "echo", "arguments_json": json.dumps({"text": "hi"})}],
        },
        "tool.requests": {
            "session_id": session, "call_id": f"call-{n}", "tool": "add", "arguments_json": '{"a": 1, "b": 2}',
            "timeout_ms": 1000, "requested_by": "00000000-0000-0000-0000-000000000001",
        },
        "tool.results": {
            "session_id": session, "call_id": f"call-{n}", "tool": "add", "status": "ok", "output": "3",
            "duration_ms": 4,
        },
        "cog.predictor_updates": {
            "source_kind": "state", "predictor_id": "p1", "domain": "planning", "confidence": 0.75 + n,
            "error": 0.1, "vector": [0.1, 0.2], "evidence": {"why": "test"},
        },
        "cog.global_frame": {
            "frame_seq": n, "leader": "planning", "previous_leader": None,
            "weights": {"planning": 0.7, "chat": 0.3}, "temperature": 1.0, "entropy": 0.61, "alpha": 0.5,
        },
        "cog.segments": {
            "segment_id": f"seg-{n}", "boundary_kind": "leader_change", "start_frame_seq": 1,
            "end_frame_seq": 5 + n, "started_at": datetime(2026, 1, 1, tzinfo=UTC),
            "ended_at": datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
            "leader_before": "chat", "leader_after": "planning", "score": 0.4,
        },
        "cog.sleep": {
            "seq": n, "from_state": "awake", "to_state": "deep", "reason": "manual",
            "until": datetime(2026, 1, 1, 0, 30, tzinfo=UTC),
            "params": {"eta": 0.0, "temperature": 1.0, "dwell_frames": 3, "drop_threshold": 0.3, "emits_frames": True},
            "policy_version": 0, "requested_by": "tests", "request_id": None,
        },
        "cog.sleep_requests": {
            "to_state": "deep", "reason": "manual", "until": None, "requested_by": "tests",
        },
        "config_updates": {
            "name": "INTEGRATOR_TEMPERATURE", "value": 0.5, "scope_tenant": tenant, "version": n,
            "checksum": "0" * 64, "author": "tests",
        },
        "memory.writes": {
            "memory_key": f"fact-{n}", "session_id": session, "operation": "upsert",
            "payload_json": '{"text": "remember"}', "source_event_id": None,
        },
        "outbox.audit": {
            "actor": "tests", "action": "outbox.replay", "target_tenant": tenant,
            "details_json": '{"ids": [1]}', "outcome": "ok",
        },
        "dlq": {
            "stream": "worker", "source_topic": "chat.messages", "source_partition": 0, "source_offset": n,
            "error_type": "decode", "error": "not Avro", "original_key": b"k", "original_value": b"\x00\x01",
            "headers": {"tenant": tenant.encode()},
        },
    }
    return {"tenant_id": tenant, **values[topic]}
