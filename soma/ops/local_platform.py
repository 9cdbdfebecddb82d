"""The platform's processes as bounded children of the caller (tests, load runs), on free ports.

Unlike `soma up`, nothing here outlives the caller: every child has a hard lifetime and is
stopped when its `with` block ends. The settings returned point at the children's ports, so
`soma demo` / `soma bench load` run with them reach exactly these processes.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from soma.ops.processes import SOMA, background, run_soma, wait_for
from soma.ops.supervisor.spec import STREAMS as TOPOLOGY
from soma.ops.supervisor.spec import stream_argv, stream_topology
from soma.settings import Settings

STREAMS = tuple(stream.name for stream in TOPOLOGY)
DEMO_TOKEN = "demo-admin-5f2c9a1e7b3d"  # noqa: S105 - a private platform's token, on loopback


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections (Linux; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - what the streams' web servers bind
        except OSError:
            return False
    return True


def free_port_base(span: int = 5) -> int:
    """A base port with `span` free ports above it, below the ephemeral range.

    Below it, because a port the kernel may give an outgoing connection (a Kafka or PostgreSQL client's
    local port) is taken at any moment: a web server that binds it later fails with EADDRINUSE."""
    high = min(_ephemeral_low(), 32768) - span
    for _ in range(50):
        base = random.randint(20000, high)  # noqa: S311 - a port, not a secret
        if all(_bindable(port) for port in range(base, base + span)):
            return base
    raise RuntimeError("no free port range found")


@contextmanager
def stream_process(name: str, settings: Settings, log_dir: Path,
                   max_lifetime_s: float = 900.0) -> Iterator[subprocess.Popen[bytes]]:
    """`faust -A streams.<name> worker` as a bounded child; yields the Popen."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    with background(stream_argv(name), log_file, settings.child_env(), max_lifetime_s=max_lifetime_s,
                    grace_s=10.0) as proc:
        yield proc


def _answers(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - our own children
            return int(response.status) == 200
    except OSError:
        return False


def wait_ready(settings: Settings, name: str, timeout_s: float = 60.0) -> None:
    """Until stream `name` answers its /ready (`TimeoutError` after `timeout_s`)."""
    url = f"http://127.0.0.1:{stream_topology(name).web_port(settings)}/ready"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _answers(url):
            return
        time.sleep(0.3)
    raise TimeoutError(f"stream {name} not ready within {timeout_s}s ({url})")


def platform_settings(settings: Settings, **extra: Any) -> Settings:
    """`settings` with free ports for every process and an admin-scoped token."""
    base = free_port_base(7)
    return settings.replace(
        streams_web_port_base=base,
        admin_port=base + 5,
        outbox_relay_metrics_port=base + 6,
        admin_tokens=SecretStr(json.dumps({DEMO_TOKEN: {"scope": "admin", "name": "demo-ops"}})),
        **extra,
    )


@contextmanager
def running_platform(settings: Settings, log_dir: Path, lifetime_s: float = 900.0) -> Iterator[Settings]:
    """Topics and migrations, then the relay, the admin API and the five streams, all ready; stopped at exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for args in (("topics", "ensure"), ("db", "upgrade", "head")):
        result = run_soma(settings, *args, timeout_s=180)
        if result.returncode != 0:
            raise RuntimeError(f"soma {' '.join(args)} failed: {result.stderr.strip()}")
    env = settings.child_env()
    with ExitStack() as stack:
        stack.enter_context(background([*SOMA, "outbox", "relay"], log_dir / "relay.log", env,
                                       max_lifetime_s=lifetime_s, grace_s=20.0))
        stack.enter_context(background([*SOMA, "admin", "serve", "--host", "127.0.0.1", "--port",
                                        str(settings.admin.port)], log_dir / "admin.log", env,
                                       max_lifetime_s=lifetime_s))
        for name in STREAMS:
            stack.enter_context(stream_process(name, settings, log_dir, max_lifetime_s=lifetime_s))
        relay = f"http://127.0.0.1:{settings.relay.metrics_port}/healthz"
        admin = f"http://127.0.0.1:{settings.admin.port}/healthz"
        wait_for(lambda: _answers(relay), 90, what=f"relay {relay}")
        wait_for(lambda: _answers(admin), 90, what=f"admin {admin}")
        for name in STREAMS:
            wait_ready(settings, name, timeout_s=120)
        yield settings
