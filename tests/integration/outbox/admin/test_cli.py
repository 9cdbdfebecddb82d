"""`soma outbox list|stats|replay` and `soma admin serve` as real subprocesses against the real PostgreSQL."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text

from soma.ops.processes import run_bounded
from soma.settings import Settings
from tests.support.outbox_admin import (
    ACME_TOKEN,
    ADMIN_TOKEN,
    audits_of,
    count_all,
    rows_of,
    seed,
    with_tokens,
)
from tests.support.procs import REPO, background, wait_for

SOMA_ADMIN = [sys.executable, "-m", "soma"]


def soma(settings: Settings, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    return run_bounded([*SOMA_ADMIN, *args], timeout_s=timeout_s, env=settings.child_env(), cwd=REPO)


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    if lines[0].startswith("{"):  # a long-running command logs JSON lines, its last error included
        entry = json.loads(lines[0])
        assert entry["level"] == "ERROR"
        return str(entry["message"])
    return lines[0]


def test_list_pages_and_stats(outbox_db: Settings, engine: Engine, pair: tuple[str, str]) -> None:
    tenant, other = pair
    ids = seed(engine, tenant, 3, status="failed")
    seed(engine, other, 2)
    first = as_json(soma(outbox_db, "outbox", "list", "--tenant", tenant, "--limit", "2", "--json"))
    assert [item["id"] for item in first["items"]] == ids[:2]
    rest = as_json(soma(outbox_db, "outbox", "list", "--tenant", tenant, "--cursor", first["next_cursor"], "--json"))
    assert [item["id"] for item in rest["items"]] == ids[2:]
    assert rest["next_cursor"] is None
    table = soma(outbox_db, "outbox", "list", "--tenant", tenant, "--status", "failed")
    assert table.returncode == 0
    assert all(str(i) in table.stdout for i in ids)
    stats = as_json(soma(outbox_db, "outbox", "stats", "--tenant", tenant, "--json"))
    assert stats["total"] == 3
    assert stats["by_topic"] == {"chat.messages": {"failed": 3}}
    assert "chat.messages" in soma(outbox_db, "outbox", "stats", "--tenant", tenant).stdout


def test_replay_by_ids_then_by_filter(outbox_db: Settings, engine: Engine, pair: tuple[str, str]) -> None:
    tenant, _ = pair
    ids = seed(engine, tenant, 3, status="dead")
    result = as_json(soma(outbox_db, "outbox", "replay", "--tenant", tenant, "--ids", f"{ids[0]},{ids[1]}", "--json"))
    assert result["count"] == 2
    copies = [row for row in rows_of(engine, tenant) if "replay-of" in row["headers"]]
    assert sorted(int(row["headers"]["replay-of"]) for row in copies) == ids[:2]
    assert all(row["dedupe_key"].startswith(f"replay:{result['audit_event_id']}:") for row in copies)
    [audit] = audits_of(engine, tenant)
    assert audit["actor"] == f"cli:{pwd.getpwuid(os.getuid()).pw_name}"

    before = count_all(engine)
    dry = soma(outbox_db, "outbox", "replay", "--tenant", tenant, "--status", "dead", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would replay 3 row(s)" in dry.stdout
    assert count_all(engine) == before
    done = soma(outbox_db, "outbox", "replay", "--tenant", tenant, "--status", "dead", "--topic", "chat.messages")
    assert "replayed 3 row(s)" in done.stdout
    assert count_all(engine) == (before[0] + 3 + 1, before[1] + 1)


def test_a_long_replay_shows_progress(outbox_db: Settings, engine: Engine, pair: tuple[str, str]) -> None:
    tenant, _ = pair
    seed(engine, tenant, 2200, status="sent")
    started = time.monotonic()
    result = soma(outbox_db, "outbox", "replay", "--tenant", tenant, "--status", "sent")
    assert result.returncode == 0, result.stderr
    assert "replayed 2200 row(s)" in result.stdout
    assert "replaying" in result.stderr  # the rich progress bar (rendered once when not on a terminal)
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["list", "--status", "sending"], "invalid status: 'sending' is not one of"),
        (["list", "--topic", "no.such.topic"], "invalid topic: 'no.such.topic' is not a catalog topic"),
        (["stats", "--since", "last week"], "invalid since: expected an ISO-8601 timestamp"),
        (["list", "--cursor", "garbage!"], "invalid cursor"),
        (["replay"], "invalid --status: give --ids, or --status"),
        (["replay", "--ids", "1", "--status", "sent"], "invalid --ids: give either --ids or --status"),
        (["replay", "--ids", "1,abc"], "invalid --ids: 'abc' is not a row id"),
        (["replay", "--ids", "999999999999"], "ids: 1 unknown id(s): 999999999999"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(
    outbox_db: Settings, engine: Engine, pair: tuple[str, str], args: list[str], expected: str
) -> None:
    tenant, _ = pair
    before = count_all(engine)
    line = one_line_error(soma(outbox_db, "outbox", args[0], "--tenant", tenant, *args[1:]))
    assert line.startswith("soma: error: ")
    assert expected in line
    assert count_all(engine) == before


def test_replay_refuses_another_tenants_ids(outbox_db: Settings, engine: Engine, pair: tuple[str, str]) -> None:
    tenant, other = pair
    own, theirs = seed(engine, tenant, 1), seed(engine, other, 1)
    before = count_all(engine)
    line = one_line_error(soma(outbox_db, "outbox", "replay", "--tenant", tenant, "--ids", f"{own[0]},{theirs[0]}"))
    assert "invalid ids: 1 id(s) belong to another tenant" in line
    assert count_all(engine) == before


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_admin_serve_answers_with_tokens_and_stops_on_sigterm(
    outbox_db: Settings, engine: Engine, pair: tuple[str, str], tmp_path: Path
) -> None:
    tenant, other = pair
    seed(engine, tenant, 2)
    configured = with_tokens(outbox_db, tenant, other, admin_shutdown_timeout_s=3.0)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "admin.log"
    with background([*SOMA_ADMIN, "admin", "serve", "--port", str(port)], configured, log, max_lifetime_s=120) as proc:

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout_s=30, what=f"admin API on {base} (log: {log})")
        assert httpx.get(f"{base}/admin/outbox", params={"tenant": tenant}).status_code == 401
        listed = httpx.get(
            f"{base}/admin/outbox", params={"tenant": tenant}, headers={"Authorization": f"Bearer {ACME_TOKEN}"}
        )
        assert listed.status_code == 200
        assert len(listed.json()["items"]) == 2
        forbidden = httpx.get(
            f"{base}/admin/outbox/stats", params={"tenant": other}, headers={"Authorization": f"Bearer {ACME_TOKEN}"}
        )
        assert forbidden.status_code == 403
        assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "Soma outbox admin API"
        stopped_at = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught (exit status -SIGTERM).
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
        assert time.monotonic() - stopped_at < 10
    text = log.read_text()
    assert "Application shutdown complete" in text
    assert ADMIN_TOKEN not in text
    assert ACME_TOKEN not in text


def test_admin_serve_without_tokens_refuses_to_start(outbox_db: Settings) -> None:
    line = one_line_error(soma(outbox_db, "admin", "serve", "--port", str(_free_port()), timeout_s=60))
    assert line == "soma: error: SOMA_ADMIN_TOKENS is not set: the admin API has no anonymous access"
    bad = outbox_db.replace(admin_tokens=SecretStr("short=admin"))
    line = one_line_error(soma(bad, "admin", "serve", "--port", str(_free_port()), timeout_s=60))
    assert line.startswith("soma: error: invalid setting SOMA_ADMIN_TOKENS: entry 1: a token must be")


def test_replay_of_a_row_over_its_topics_limit_is_one_line_and_replays_nothing(
    outbox_db: Settings, engine: Engine, pair: tuple[str, str]
) -> None:
    tenant, _ = pair
    ids = seed(engine, tenant, 2, status="dead")
    with engine.begin() as conn:  # a legacy row, written before the size check
        conn.execute(text("UPDATE outbox_events SET payload = :p WHERE id = :id"),
                     {"p": b"\xc3\x01" + b"x" * 1_100_000, "id": ids[1]})
    before = count_all(engine)
    result = soma(outbox_db, "outbox", "replay", "--tenant", tenant, "--ids", f"{ids[0]},{ids[1]}")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"row {ids[1]} (chat.messages): record of" in result.stderr
    assert "exceeds the topic's limit of 1000000 bytes" in result.stderr
    assert "Traceback" not in result.stderr
    assert count_all(engine) == before
