"""A whole platform under `soma up --detach`, in a topic prefix, schema, state dir and ports of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.schema import CreateSchema, DropSchema

from soma.clients import database_engine
from soma.ops.processes import is_running
from soma.ops.supervisor.state import Paths, PlatformState, read_state
from soma.settings import Settings
from tests.support.procs import run_soma
from tests.support.streams import free_port_base

GRACE_S = 20.0
COMPONENTS = ["relay", "admin-api", "stream-replicator", "stream-tools", "stream-worker", "stream-integrator",
              "stream-segmenter"]
ADMIN_TOKEN = "platform-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def platform_state(settings: Settings) -> PlatformState:
    state = read_state(Paths.of(settings).state_file)
    assert state is not None
    return state


@contextmanager
def detached_platform(settings: Settings, tmp_path: Path, suffix: str, **extra: Any) -> Iterator[Settings]:
    """Settings for a platform of its own (`soma up --detach` is the test's to run); stopped and dropped at exit."""
    schema = f"{settings.database.database_schema}_{suffix}"
    engine = database_engine(settings)
    with engine.begin() as conn:
        conn.execute(CreateSchema(schema, if_not_exists=True))
    own = settings.replace(
        database_schema=schema, topic_prefix=f"{settings.kafka.topic_prefix}{suffix}.", state_dir=tmp_path / "state",
        streams_web_port_base=free_port_base(5), outbox_relay_metrics_port=free_port(),
        admin_port=free_port(), admin_tokens=f"{ADMIN_TOKEN}=admin",
        streams_session_timeout_s=10.0, supervisor_stop_grace_s=GRACE_S, **extra,
    )
    own = Settings.model_validate(own.model_dump())  # re-validate (admin_tokens becomes a SecretStr)
    try:
        yield own
    finally:
        paths = Paths.of(own)
        state = read_state(paths.state_file)
        run_soma(own, "down", timeout_s=GRACE_S + 60)
        leftovers = [c.pid for c in (state.components if state else []) if c.pid]
        with contextlib.suppress(ValueError, OSError):
            leftovers.append(int(paths.pid_file.read_text()))
        for pid in leftovers:  # by pid, never by name
            if is_running(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with engine.begin() as conn:
            conn.execute(DropSchema(schema, cascade=True, if_exists=True))
        engine.dispose()
