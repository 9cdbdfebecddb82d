"""The whole platform as bounded children for tests and load runs: relay, admin API, the five streams.

Each gets free ports; the settings returned point at them, so `soma demo` / `soma bench load`
run with those settings reach exactly these processes.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from soma.ops.supervisor.spec import STREAMS as TOPOLOGY
from soma.settings import Settings
from tests.support.procs import SOMA, background, run_soma, wait_for
from tests.support.streams import free_port_base, stream_process, wait_ready

STREAMS = tuple(stream.name for stream in TOPOLOGY)
DEMO_TOKEN = "demo-admin-5f2c9a1e7b3d"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return int(response.status) == 200
    except OSError:
        return False


def platform_settings(settings: Settings, **extra: Any) -> Settings:
    """`settings` with free ports for every process and an admin-scoped token."""
    base = free_port_base(7)
    return settings.model_copy(update={
        "streams_web_port_base": base,
        "admin_port": base + 5,
        "outbox_relay_metrics_port": base + 6,
        "admin_tokens": SecretStr(json.dumps({DEMO_TOKEN: {"scope": "admin", "name": "demo-ops"}})),
        **extra,
    })


@contextmanager
def running_platform(settings: Settings, log_dir: Path, lifetime_s: float = 900.0) -> Iterator[Settings]:
    """Topics and migrations, then the relay, the admin API and the five streams, all ready; stopped at exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for args in (("topics", "ensure"), ("db", "upgrade", "head")):
        result = run_soma(settings, *args, timeout_s=180)
        if result.returncode != 0:
            raise RuntimeError(f"soma {' '.join(args)} failed: {result.stderr.strip()}")
    with ExitStack() as stack:
        stack.enter_context(background([*SOMA, "outbox", "relay"], settings, log_dir / "relay.log",
                                       max_lifetime_s=lifetime_s, grace_s=20.0))
        stack.enter_context(background([*SOMA, "admin", "serve", "--host", "127.0.0.1", "--port",
                                        str(settings.admin_port)], settings, log_dir / "admin.log",
                                       max_lifetime_s=lifetime_s))
        for name in STREAMS:
            stack.enter_context(stream_process(name, settings, log_dir, max_lifetime_s=lifetime_s))
        relay = f"http://127.0.0.1:{settings.outbox_relay_metrics_port}/healthz"
        admin = f"http://127.0.0.1:{settings.admin_port}/healthz"
        wait_for(lambda: _answers(relay), 90, what=f"relay {relay}")
        wait_for(lambda: _answers(admin), 90, what=f"admin {admin}")
        for name in STREAMS:
            wait_ready(settings, name, timeout_s=120)
        yield settings
