"""The local stack, for real: status through the CLI, round trips through each service."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic
from sqlalchemy import text

from soma.clients import database_engine, kafka_admin, kafka_consumer, kafka_producer, redis_client
from soma.ops.stack.redis import LocalRedis
from soma.ops.stack.system import port_open
from soma.settings import Settings, load_settings
from tests.support.procs import run_soma, wait_for


def test_status_reports_every_service_healthy_with_its_address(stack: Settings) -> None:
    result = run_soma(stack, "stack", "status")
    assert result.returncode == 0, result.stderr
    for service, address in (("kafka", "127.0.0.1:9092"), ("postgresql", "127.0.0.1:5432/soma"),
                             ("redis", "redis://127.0.0.1:6379/0")):
        line = next(line for line in result.stdout.splitlines() if f" {service} " in line)
        assert "healthy" in line
        assert address in line


def test_stack_up_twice_is_harmless(stack: Settings) -> None:
    pid_file = stack.stack.state_dir / "kafka" / "kafka.pid"
    kafka_pid = pid_file.read_text() if pid_file.exists() else None
    result = run_soma(stack, "stack", "up", timeout_s=120)
    assert result.returncode == 0, result.stderr
    assert "healthy" in result.stdout
    assert "starting broker" not in result.stderr
    if kafka_pid is not None:
        assert pid_file.read_text() == kafka_pid


def test_kafka_round_trip_keeps_keys_headers_and_order(settings: Settings, unique_topic: str) -> None:
    admin = kafka_admin(settings)
    futures = admin.create_topics([NewTopic(unique_topic, num_partitions=3, replication_factor=1)])
    futures[unique_topic].result(30)
    producer = kafka_producer(settings)
    sent = [(f"tenant-{i % 2}".encode(), f"value-{i}".encode()) for i in range(50)]
    acked: list[tuple[int, int]] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is None:
            acked.append((msg.partition(), msg.offset()))  # type: ignore[attr-defined]

    for key, value in sent:
        producer.produce(unique_topic, key=key, value=value, headers=[("tenant", key)], on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert len(acked) == len(sent)

    consumer = kafka_consumer(settings, group_id=f"test-{uuid.uuid4().hex}")
    consumer.subscribe([unique_topic])
    received = []
    deadline = time.monotonic() + 30
    while len(received) < len(sent) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            received.append(msg)
    consumer.close()
    assert sorted((m.key(), m.value()) for m in received) == sorted(sent)
    assert all(dict(m.headers())["tenant"] == m.key() for m in received)
    # Per key, order is preserved (one key always maps to one partition).
    for key in {k for k, _ in sent}:
        assert [m.value() for m in received if m.key() == key] == [v for k, v in sent if k == key]
    partitions = {TopicPartition(unique_topic, m.partition()) for m in received}
    assert len(partitions) >= 1


def test_postgres_run_schema_isolates_tables(settings: Settings, stack: Settings) -> None:
    engine = database_engine(settings)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (id int primary key, note text)"))
        conn.execute(text("INSERT INTO probe VALUES (:id, :note)"), {"id": 1, "note": "hello"})
    with engine.connect() as conn:
        assert conn.execute(text("SELECT note FROM probe WHERE id = :id"), {"id": 1}).scalar_one() == "hello"
        assert conn.execute(text("SELECT current_schema()")).scalar_one() == settings.database.database_schema
    engine.dispose()
    # The role's default schema does not see the run's table.
    default = database_engine(stack)
    with default.connect() as conn:
        found = conn.execute(text("SELECT to_regclass('public.probe')")).scalar_one()
    default.dispose()
    assert found is None


def test_redis_set_get_with_ttl(settings: Settings, run_id: str) -> None:
    client = redis_client(settings)
    key = f"test:{run_id}:probe"
    client.set(key, b"v", ex=5)
    assert client.get(key) == b"v"
    assert 0 < client.ttl(key) <= 5
    client.delete(key)
    client.close()


def test_unreachable_kafka_is_one_line_naming_the_setting(stack: Settings) -> None:
    bad = load_settings(kafka_bootstrap="127.0.0.1:1", kafka_timeout_s=2.0)
    result = run_soma(bad, "stack", "status", timeout_s=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        next(line for line in result.stderr.splitlines() if "SOMA_KAFKA_BOOTSTRAP" in line)
    ]
    assert "127.0.0.1:1" in result.stderr


def test_unreachable_postgres_is_one_line_naming_the_setting(stack: Settings) -> None:
    bad = load_settings(database_url="postgresql+psycopg://soma:hunter2-secret@127.0.0.1:1/soma")
    result = run_soma(bad, "stack", "status", timeout_s=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "SOMA_DATABASE_URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "hunter2-secret" not in result.stdout + result.stderr


def test_invalid_setting_is_one_line_naming_the_variable(stack: Settings) -> None:
    result = run_soma(stack, "stack", "status", SOMA_KAFKA_BOOTSTRAP="no-port-here")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "soma: error: invalid setting SOMA_KAFKA_BOOTSTRAP: expected host:port[,host:port...], got 'no-port-here'"
    )


def test_redis_started_by_the_stack_is_stopped_by_pid_file(tmp_path: Path) -> None:
    """A second Redis on another port, in its own state folder: up starts it, down stops only it."""
    port = 16379 + uuid.uuid4().int % 1000
    own = load_settings(redis_url=f"redis://127.0.0.1:{port}/0", state_dir=tmp_path)
    redis = LocalRedis(own)
    assert redis.start()
    try:
        wait_for(lambda: port_open("127.0.0.1", port), timeout_s=15, what="redis listening")
        pid = redis.daemon.pid()
        assert pid is not None
        assert not redis.start(), "a second start must reuse the running server"
        assert redis.daemon.pid() == pid
    finally:
        assert redis.stop()
    assert not port_open("127.0.0.1", port)
    assert redis.daemon.pid() is None
    # The shared stack's Redis was not touched.
    assert port_open("127.0.0.1", 6379)


@pytest.mark.parametrize("command", [["--help"], ["stack", "--help"]])
def test_help_lists_command_groups(stack: Settings, command: list[str]) -> None:
    result = run_soma(stack, *command)
    assert result.returncode == 0
    assert "stack" in result.stdout if command == ["--help"] else "status" in result.stdout
