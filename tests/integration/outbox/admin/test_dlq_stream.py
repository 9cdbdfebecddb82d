"""The whole loop with a real stream: a poison record is dead-lettered by the worker, listed, shown, redriven
with `soma dlq`, read by the worker again (and, still poison, dead-lettered again naming the first), audited.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from soma.clients import kafka_producer
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.dlq.letters import DeadLetter
from soma.dlq.reader import DlqReader
from soma.dlq.select import DlqFilter
from soma.settings import Settings
from tests.integration.outbox.admin.test_cli import as_json, soma
from tests.support.outbox_admin import ACME_TOKEN, audits_of, with_tokens
from tests.support.procs import run_soma
from tests.support.streams import free_port_base, stream_process, wait_ready

LOGS = Path(".soma/test-logs/streams")
POISON = b"\x00garbage"


@pytest.fixture(scope="module")
def worker(outbox_db: Settings, names: tuple[str, str]) -> Iterator[Settings]:
    """The worker stream on topics of this module's own prefix."""
    own = with_tokens(outbox_db, *names).replace(
        topic_prefix=f"{outbox_db.kafka.topic_prefix}dlqs{uuid.uuid4().hex[:6]}.",
        streams_web_port_base=free_port_base(),
        worker_responder="streams.logic.responders:EchoResponder",
    )
    ensured = run_soma(own, "topics", "ensure", timeout_s=120)
    assert ensured.returncode == 0, ensured.stderr
    with stream_process("worker", own, LOGS):
        wait_ready(own, "worker", timeout_s=120)
        yield own


def dead_letters(settings: Settings, tenant: str, count: int, timeout_s: float = 90.0) -> list[DeadLetter]:
    """The tenant's dead letters once there are `count` of them (bounded)."""
    reader = DlqReader(settings, Codec(load_catalog(), settings))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            found = reader.scan(DlqFilter(tenants=frozenset({tenant})), limit=100).items
            if len(found) >= count:
                return found
            time.sleep(0.5)
    finally:
        reader.close()
    raise AssertionError(f"fewer than {count} dead letter(s) of {tenant} within {timeout_s}s")


def test_a_poison_record_is_dead_lettered_shown_redriven_and_audited(
    worker: Settings, names: tuple[str, str], engine: Engine, tmp_path: Path
) -> None:
    acme, _ = names
    producer = kafka_producer(worker)
    producer.produce(worker.topic_name("chat.messages"), key=f"{acme}:s".encode(), value=POISON,
                     headers=[("tenant", acme.encode()), ("dedupe-key", b"poison-1")])
    assert producer.flush(30) == 0

    (first,) = dead_letters(worker, acme, 1)
    listed = as_json(soma(worker, "dlq", "list", "--tenant", acme, "--source-topic", "chat.messages", "--json"))
    assert [item["id"] for item in listed["items"]] == [str(first.id)]
    shown = as_json(soma(worker, "dlq", "show", str(first.id), "--json"))
    assert (shown["stream"], shown["error_type"]) == ("worker", "decode")
    assert shown["original"]["preview_hex"] == POISON.hex()
    assert shown["original"]["not_decodable"]

    token = tmp_path / "token"
    token.write_text(ACME_TOKEN)
    result = as_json(soma(worker, "dlq", "redrive", "--ids", str(first.id), "--json", "--token-file", str(token)))
    assert (result["outcome"], result["failed"]) == ("ok", {})

    # The worker read the redriven record: still poison, so dead-lettered again, naming the first.
    again = dead_letters(worker, acme, 2)[1]
    assert again.original_value == POISON
    assert again.headers["redrive-of"] == str(first.id).encode()
    assert again.headers["dedupe-key"] == b"poison-1"
    (audit,) = [a for a in audits_of(engine, acme) if a["event_id"] == result["audit_event_id"]]
    assert audit["details"]["redriven"][0]["offset"] == again.source_offset
