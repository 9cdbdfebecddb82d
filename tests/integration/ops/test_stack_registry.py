"""`soma stack up|status|down` with ``SOMA_STACK_REGISTRY=apicurio``, through the CLI, and the CLI's
records framed by that registry.

The stack here has a state folder of its own (a temporary one) and a free port for the registry:
Kafka, PostgreSQL and Redis already answer, so `up` starts only the registry and `down` stops only
it. The registry's download is the stack state folder's (fetched once, linked here).
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path

from confluent_kafka import TopicPartition

from soma.clients import kafka_consumer
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.topics import ensure
from soma.ops.processes import is_running
from soma.ops.stack.registry import LocalRegistry
from soma.settings import Settings
from tests.support.procs import run_soma
from tests.support.samples import sample

CATALOG = load_catalog()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raw_value(settings: Settings, topic: str, partition: int, offset: int) -> bytes:
    consumer = kafka_consumer(settings, f"raw-{uuid.uuid4().hex[:8]}")
    try:
        consumer.assign([TopicPartition(settings.topic_name(topic), partition, offset)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and msg.offset() == offset:
                return bytes(msg.value() or b"")
    finally:
        consumer.close()
    raise AssertionError(f"no record at {topic}[{partition}]@{offset}")


def test_stack_runs_checks_and_stops_the_registry_and_the_cli_frames_records_with_it(
    settings: Settings, stack: Settings, tmp_path: Path
) -> None:
    cached = LocalRegistry(stack)
    cached.fetch()  # once per stack state folder
    state = tmp_path / "state"
    (state / "registry").mkdir(parents=True)
    (state / "registry" / cached.dist.name).symlink_to(cached.dist)
    own = settings.replace(state_dir=str(state), stack_registry="apicurio", stack_registry_port=_free_port())
    assert own.kafka.schema_registry_url is None  # the local registry is used because it is the stack's
    registry = LocalRegistry(own)
    pid = None
    try:
        up = run_soma(own, "stack", "up", "--timeout", "240", timeout_s=300)
        assert up.returncode == 0, up.stderr
        assert "schema-registry: starting Apicurio pid" in up.stderr
        assert "healthy" in next(line for line in up.stdout.splitlines() if "schema-registry" in line)
        pid = registry.daemon.pid()
        assert pid is not None

        status = run_soma(own, "stack", "status", timeout_s=120)
        assert status.returncode == 0, status.stderr
        row = next(line for line in status.stdout.splitlines() if "schema-registry" in line)
        assert "healthy" in row
        assert f"soma (pid {pid})" in row

        ensure(own, CATALOG)
        tenant = f"tenant-{uuid.uuid4().hex[:6]}"
        value = Codec(CATALOG, settings).to_json("chat.messages", sample("chat.messages", tenant=tenant))
        produced = run_soma(own, "produce", "chat.messages", "--tenant", tenant, "--value-json", json.dumps(value))
        assert produced.returncode == 0, produced.stderr
        ack = json.loads(produced.stdout)
        raw = _raw_value(own, "chat.messages", ack["partition"], ack["offset"])
        assert raw[0] == 0  # Confluent framing: magic 0, then the registry's schema id
        consumed = run_soma(own, "consume", "chat.messages", "--from-beginning", "--tenant", tenant,
                            "--max-messages", "1", "--idle-timeout", "30")
        assert consumed.returncode == 0, consumed.stderr
        assert json.loads(consumed.stdout.splitlines()[0])["value"]["event_id"] == ack["event_id"]
    finally:
        down = run_soma(own, "stack", "down", timeout_s=120)
    assert down.returncode == 0, down.stderr
    assert "schema-registry: stopped" in down.stderr
    assert pid is not None
    assert not is_running(pid)
    # Only what this `up` started: the shared broker, database and cache still answer.
    after = run_soma(stack, "stack", "status", timeout_s=120)
    assert after.returncode == 0, after.stderr
