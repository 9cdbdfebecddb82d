"""One chat message, one connected trace across the processes it passes through.

`soma outbox emit` (the write) -> `soma outbox relay` (publish) -> `faust -A streams.worker` (process,
publish tool.requests + memory.writes) -> `streams.tools` (process, publish tool.results) -> the worker
again (the result becomes a role=tool chat message, processed in turn) -> `streams.replicator` (process,
PostgreSQL write). Every process exports its spans with the
jsonl exporter to a file of its own (`{service}` in SOMA_OTEL_TRACES_FILE); the test reads them all.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import text

from soma.clients import database_engine
from soma.settings import Settings
from tests.support.outbox_relay import own_schema, relay_process, relay_settings
from tests.support.procs import run_soma, wait_for
from tests.support.samples import sample
from tests.support.streams import free_port_base, stream_process, wait_ready
from tests.support.traces import SpanRecord, describe, load_spans

STREAMS = ("worker", "tools", "replicator")
LOGS = Path(".soma/test-logs/traces")


@pytest.fixture(scope="module")
def traced(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path]]:
    """Settings of this module: own schema (migrated), own topic prefix (own consumer groups), jsonl spans."""
    spans_dir = tmp_path_factory.mktemp("spans")
    with own_schema(settings, "traces") as own:
        own = own.replace(
            topic_prefix=f"{settings.kafka.topic_prefix}traces.",
            streams_web_port_base=free_port_base(),
            otel_traces_exporter="jsonl",
            otel_traces_file=spans_dir / "{service}.jsonl",
        )
        ensured = run_soma(own, "topics", "ensure", timeout_s=120)
        assert ensured.returncode == 0, ensured.stderr
        yield own, spans_dir


def _spans(spans_dir: Path) -> list[SpanRecord]:
    return load_spans(sorted(spans_dir.glob("*.jsonl")))


def test_one_chat_message_is_one_connected_trace_across_the_processes(traced: tuple[Settings, Path]) -> None:
    own, spans_dir = traced
    tenant = f"trace-{uuid.uuid4().hex[:8]}"
    message = {k: v for k, v in sample("chat.messages", tenant=tenant).items() if k != "tenant_id"}
    engine = database_engine(own)
    try:
        LOGS.mkdir(parents=True, exist_ok=True)
        with ExitStack() as running:
            running.enter_context(relay_process(relay_settings(own), LOGS / f"relay-{tenant}.log"))
            for name in STREAMS:
                running.enter_context(stream_process(name, own, LOGS))
            for name in STREAMS:
                wait_ready(own, name, timeout_s=120)
            emitted = run_soma(own, "outbox", "emit", "chat.messages", "--tenant", tenant,
                               "--dedupe-key", "m1", "--value-json", json.dumps(message))
            assert emitted.returncode == 0, emitted.stderr

            def replicated() -> bool:  # the user message and the folded-back tool result
                with engine.connect() as conn:
                    count = conn.execute(text("SELECT count(*) FROM memory_replica WHERE tenant_id = :t"),
                                         {"t": tenant}).scalar_one()
                return int(count) >= 2

            wait_for(replicated, 120, interval_s=0.5, what="two replica rows")

            def replica_spans_written() -> bool:
                return sum(s.name == "upsert memory_replica" for s in _spans(spans_dir)) >= 2

            wait_for(replica_spans_written, 30, what="the replicator's spans")
        # Stopped with SIGTERM: anything still batched has been flushed.
    finally:
        engine.dispose()

    spans = _spans(spans_dir)
    roots = [s for s in spans if s.name == "create chat.messages" and s.attributes.get("soma.tenant") == tenant]
    assert len(roots) == 1, describe(spans)
    trace = [s for s in spans if s.trace_id == roots[0].trace_id]
    listing = describe(trace)
    services = Counter(s.service for s in trace)
    assert set(services) >= {"soma-cli", "soma-relay", "soma-worker", "soma-tools", "soma-replicator"}, listing

    # Connected: one root (the outbox write), every other span's parent is in the trace.
    ids = {s.span_id for s in trace}
    assert [s for s in trace if s.parent_id is None] == roots, listing
    assert all(s.parent_id in ids for s in trace if s.parent_id is not None), listing

    # The hops, in order of causality.
    by_id = {s.span_id: s for s in trace}

    def chain(span: SpanRecord) -> list[str]:
        names = [f"{span.service}:{span.name}"]
        while span.parent_id is not None:
            span = by_id[span.parent_id]
            names.append(f"{span.service}:{span.name}")
        return names[::-1]

    upserts = [s for s in trace if s.name == "upsert memory_replica"]
    assert len(upserts) >= 2, listing
    longest = max((chain(s) for s in upserts), key=len)
    assert longest == [
        "soma-cli:create chat.messages", "soma-relay:publish chat.messages",
        "soma-worker:process chat.messages", "soma-worker:publish tool.requests",
        "soma-tools:process tool.requests", "soma-tools:publish tool.results",
        "soma-worker:process tool.results", "soma-worker:publish chat.messages",  # folded back as role=tool
        "soma-worker:process chat.messages", "soma-worker:publish memory.writes",
        "soma-replicator:process memory.writes", "soma-replicator:upsert memory_replica",
    ], listing

    # Messaging semantic conventions on every Kafka hop, plus the tenant.
    prefix = own.kafka.topic_prefix
    for span in trace:
        operation = span.name.split(" ", 1)[0]
        if operation not in {"create", "publish", "process"}:
            continue
        a = span.attributes
        assert a["messaging.system"] == "kafka", span
        assert a["messaging.operation.type"] == operation, span
        assert a["messaging.destination.name"] == prefix + span.name.split(" ", 1)[1], span
        assert a["soma.tenant"] == tenant, span
        assert span.status != "ERROR", span
        if operation in {"publish", "process"}:
            assert "messaging.destination.partition.id" in a, span
            assert isinstance(a["messaging.kafka.offset"], int), span  # publish: set from the delivery report
        if operation == "process":
            assert a["messaging.consumer.group.name"] == f"{prefix}soma-{span.service.removeprefix('soma-')}", span
            assert a["soma.event_id"], span
            assert a["soma.session_id"] == message["session_id"], span
        if span.service in {"soma-worker", "soma-tools"} and operation == "publish":
            assert a["soma.event_id"], span
    assert upserts[0].attributes["db.system.name"] == "postgresql"
