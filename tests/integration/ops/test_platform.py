"""`soma up --detach` runs the whole platform (relay, admin API, five streams); ps, health, restart, down.

The run gets its own topic prefix, PostgreSQL schema, state dir and free ports; the shared
stack is only used, never stopped. Every step is bounded; teardown kills leftovers by pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from sqlalchemy import text

from soma.clients import database_engine, kafka_admin
from soma.observability.logs import settings_secrets
from soma.ops.processes import is_running
from soma.ops.supervisor.state import Paths
from soma.settings import Settings
from tests.support.detached import ADMIN_TOKEN, COMPONENTS, GRACE_S, platform_state
from tests.support.procs import run_soma, wait_for


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def test_up_detach_ps_health_restart_and_down(platform: Settings) -> None:
    out = _ok(run_soma(platform, "up", "--detach", "--timeout", "240", timeout_s=300, COLUMNS="200"))
    for name in COMPONENTS:
        assert name in out
    assert "ENABLE_COG_THREADS=False" in out
    assert "faust-streaming" in out

    # `soma up` migrated the schema and created the catalog topics before starting anything.
    engine = database_engine(platform)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('outbox_events')")).scalar_one() is not None
    engine.dispose()
    assert platform.topic_name("chat.messages") in kafka_admin(platform).list_topics(timeout=10).topics

    ps = _ok(run_soma(platform, "ps", timeout_s=60, COLUMNS="200"))
    for name in COMPONENTS:
        assert name in ps
    state = platform_state(platform)
    assert {c.state for c in state.components} == {"ready"}
    _ok(run_soma(platform, "health", timeout_s=120, COLUMNS="200"))

    # SIGKILL one stream: health names it, the supervisor restarts it, health is green again.
    victim = state.component("stream-tools")
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    # The supervisor notices an exit on its next tick (1 s when steady); health reports what it recorded.
    wait_for(lambda: platform_state(platform).component("stream-tools").state != "ready", timeout_s=30,
             interval_s=0.2, what="the supervisor noticed stream-tools' exit")
    health = run_soma(platform, "health", timeout_s=120, COLUMNS="200")
    assert health.returncode == 1, health.stdout
    assert "soma health: stream-tools not ready" in health.stderr
    assert "[supervisor: " in health.stderr  # what the supervisor is doing about it
    wait_for(lambda: (c := platform_state(platform).component("stream-tools")).restarts == 1 and c.state == "ready",
             timeout_s=180, interval_s=1.0, what="stream-tools restarted and ready")
    assert platform_state(platform).component("stream-tools").last_exit == -signal.SIGKILL
    wait_for(lambda: run_soma(platform, "health", timeout_s=120).returncode == 0, timeout_s=120, interval_s=2.0,
             what="soma health green again")

    # `soma down`: every child and the supervisor are gone within the grace period.
    state = platform_state(platform)
    pids = [c.pid for c in state.components if c.pid is not None] + [state.supervisor_pid]
    assert len(pids) == len(COMPONENTS) + 1
    began = time.monotonic()
    down = _ok(run_soma(platform, "down", timeout_s=GRACE_S + 60))
    elapsed = time.monotonic() - began
    assert "stopped" in down
    still = [pid for pid in pids if is_running(pid)]
    assert not still, f"still running after soma down: {still}"
    assert elapsed < GRACE_S + 10, f"soma down took {elapsed:.1f}s (grace {GRACE_S}s)"
    final = platform_state(platform)
    assert final.phase == "stopped"
    assert {c.state for c in final.components} == {"stopped"}

    # Logs of the whole run (start, a SIGKILL and restart, stop): every line of every component's
    # file is a JSON object naming its service, and no configured secret appears anywhere.
    secrets = [s for s in settings_secrets(platform) if len(s) >= 6]
    assert ADMIN_TOKEN in secrets
    for name in COMPONENTS:
        path = Paths.of(platform).component_log(name)
        written = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in written, f"{path.name} contains a configured secret ({secret[:4]}...)"
        lines = [json.loads(line) for line in written.splitlines() if line.strip()]
        assert lines, f"{path.name} is empty"
        assert all(isinstance(line, dict) and line["service"] == name for line in lines), path.name
