"""`soma sleep show|set|policy show|policy set` as real subprocesses (PostgreSQL, Kafka, Redis).

No integrator runs here: for `--wait` the test writes the Redis entry itself, as the integrator does
(the SleepStateChanged record as `codec.to_json` at `sleep:{tenant}`).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pwd
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from soma.config_updates import publish
from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.topics import ensure
from soma.settings import Settings
from soma.sleep.policy import redis_key
from tests.integration.outbox.admin.test_cli import as_json, one_line_error, soma
from tests.integration.outbox.admin.test_sleep_api import _cache_transition
from tests.support.outbox_admin import ACME_TOKEN, audits_of, rows_of, sleep_redis, with_tokens

CLI_ACTOR = f"cli:{pwd.getpwuid(os.getuid()).pw_name}"


@pytest.fixture(scope="module")
def own(outbox_db: Settings, names: tuple[str, str]) -> Settings:
    ensure(outbox_db, load_catalog())
    settings = with_tokens(outbox_db, *names)
    publish(settings, "ENABLE_SLEEP", "true", tenant=names[0], author="tests")  # acme only
    return settings


@pytest.fixture(scope="module")
def redis(own: Settings, names: tuple[str, str]) -> Iterator[Any]:
    with sleep_redis(own, names) as client:
        yield client


def _requests(own: Settings, engine: Engine, tenant: str) -> list[dict[str, Any]]:
    codec = Codec(load_catalog(), own)
    return [codec.decode("cog.sleep_requests", bytes(r["payload"]))
            for r in rows_of(engine, tenant) if r["topic"] == "cog.sleep_requests"]


def test_set_writes_an_audited_request_and_show_reads_the_state(
    own: Settings, engine: Engine, redis: Any, names: tuple[str, str]
) -> None:
    acme, _ = names
    redis.delete(redis_key(acme))
    assert "awake (no transition recorded, seq 0)" in soma(own, "sleep", "show", "--tenant", acme).stdout
    answer = as_json(soma(own, "sleep", "set", "deep", "--tenant", acme, "--for", "30m", "--json"))
    [request] = [r for r in _requests(own, engine, acme) if r["event_id"] == answer["request_id"]]
    assert (request["to_state"], request["reason"], request["requested_by"]) == ("deep", "manual", CLI_ACTOR)
    [audit] = [a for a in audits_of(engine, acme) if a["event_id"] == answer["audit_event_id"]]
    assert (audit["action"], audit["actor"]) == ("sleep_mode_set", CLI_ACTOR)
    _cache_transition(own, redis, acme, seq=1, to_state="deep", request_id=answer["request_id"])
    shown = as_json(soma(own, "sleep", "show", "--tenant", acme, "--json"))
    assert (shown["state"], shown["seq"], shown["request_id"]) == ("deep", 1, answer["request_id"])


def test_set_with_wait_prints_the_transition(own: Settings, engine: Engine, redis: Any, names: tuple[str, str]) -> None:
    acme, _ = names
    known = {r["event_id"] for r in _requests(own, engine, acme)}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        run = pool.submit(soma, own, "sleep", "set", "freeze", "--tenant", acme, "--wait", "60", "--json")
        deadline, request_id = time.monotonic() + 60, None
        while request_id is None and time.monotonic() < deadline:
            new = [r["event_id"] for r in _requests(own, engine, acme) if r["event_id"] not in known]
            request_id = new[0] if new else None
            time.sleep(0.05)
        assert request_id is not None
        _cache_transition(own, redis, acme, seq=2, to_state="freeze", request_id=request_id)  # the integrator's part
        answer = as_json(run.result(timeout=120))
    assert (answer["transition"]["state"], answer["transition"]["request_id"]) == ("freeze", request_id)


def test_policy_set_and_show(own: Settings, tmp_path: Path, names: tuple[str, str]) -> None:
    acme, _ = names
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"light": {"eta": 0.1, "dwell_frames": 5}, "default_ttl_s": 900}))
    published = as_json(soma(own, "sleep", "policy", "set", "--tenant", acme, "--file", str(path), "--json"))
    shown = as_json(soma(own, "sleep", "policy", "show", "--tenant", acme, "--json"))
    assert (shown["version"], shown["scope"]) == (published["version"], "tenant")
    assert (shown["policy"]["light"]["dwell_frames"], shown["policy"]["default_ttl_s"]) == (5, 900)


@pytest.mark.parametrize(("args", "content", "expected"), [
    (["set", "asleep"], None, "invalid STATE: Input should be 'awake', 'light', 'deep' or 'freeze'"),
    (["set", "deep", "--for", "soon"], None, "invalid --for: "),
    (["set", "deep", "--for", "5m", "--until", "2999-01-01T00:00:00Z"], None, "give `for` or `until`, not both"),
    (["set", "deep", "--until", "2020-01-01T00:00:00Z"], None, "invalid until: 2020-01-01T00:00:00+00:00 is not in"),
    (["set", "deep", "--wait", "-1"], None, "invalid --wait: "),
    (["policy", "set"], b'{"deep": {"eta": 0.5}}', "invalid SLEEP_POLICY.deep.eta: must be 0"),
    (["policy", "set"], b"\xff\xfe{}", "is not UTF-8 text"),
    (["policy", "set"], b'{"a":' * 20 + b"1" + b"}" * 20, "invalid SLEEP_POLICY: "),
    (["policy", "set"], b"x" * 70_000, "is larger than 65536 bytes"),
])
def test_user_errors_are_one_line_and_write_nothing(
    own: Settings, engine: Engine, tmp_path: Path, names: tuple[str, str], args: list[str],
    content: bytes | None, expected: str
) -> None:
    acme, _ = names
    extra = []
    if content is not None:
        (tmp_path / "p.json").write_bytes(content)
        extra = ["--file", str(tmp_path / "p.json")]
    before = rows_of(engine, acme), audits_of(engine, acme)
    assert expected in one_line_error(soma(own, "sleep", *args, "--tenant", acme, *extra))
    assert (rows_of(engine, acme), audits_of(engine, acme)) == before


def test_the_flag_the_scope_and_a_missing_file_are_one_line(own: Settings, tmp_path: Path,
                                                            names: tuple[str, str]) -> None:
    acme, globex = names
    line = one_line_error(soma(own, "sleep", "show", "--tenant", globex))
    assert f"sleep is off for tenant {globex}: turn it on with `soma config set ENABLE_SLEEP true --tenant {globex}`" \
        in line
    token = tmp_path / "token"
    token.write_text(ACME_TOKEN + "\n")
    assert "forbidden" in one_line_error(soma(own, "sleep", "show", "--tenant", globex, "--token-file", str(token)))
    assert "forbidden" in one_line_error(soma(own, "sleep", "policy", "show", "--tenant", globex,
                                              "--token-file", str(token)))
    assert one_line_error(soma(own, "sleep", "policy", "set", "--tenant", acme, "--file", str(tmp_path / "none")))
    assert "invalid tenant" in one_line_error(soma(own, "sleep", "show", "--tenant", "bad tenant!"))
