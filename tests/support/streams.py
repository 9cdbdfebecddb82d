"""Helpers for stream integration tests: start `faust ... worker` children, produce, collect."""

from __future__ import annotations

import random
import socket
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import ConsumedEvent, EventConsumer, EventProducer
from soma.ops.supervisor.spec import stream_topology
from soma.settings import Settings
from tests.support.go_tools import go_installed
from tests.support.procs import background

FAUST = str(Path(sys.executable).parent / "faust")
OPA_VERSION = "v1.4.2"


def free_port_base(span: int = 5) -> int:
    """A base port with `span` free ports above it."""
    for _ in range(50):
        base = random.randint(20000, 40000)
        ok = True
        for port in range(base, base + span):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range found")


def port_of(settings: Settings, name: str) -> int:
    return stream_topology(name).web_port(settings)


@contextmanager
def stream_process(name: str, settings: Settings, log_dir: Path, max_lifetime_s: float = 900.0) -> Iterator[Any]:
    """`faust -A streams.<name> worker` as a bounded child; yields the Popen."""
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = [FAUST, "-A", f"streams.{name}", "--quiet", "worker", "-l", "info"]
    log_file = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    with background(argv, settings, log_file, max_lifetime_s=max_lifetime_s, grace_s=10.0) as proc:
        yield proc


def wait_ready(settings: Settings, name: str, timeout_s: float = 60.0) -> None:
    url = f"http://127.0.0.1:{port_of(settings, name)}/ready"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"stream {name} not ready within {timeout_s}s ({url})")


class Bus:
    """Produce catalog events and read topics back (fresh group per read, from the beginning)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = load_catalog()
        self.codec = Codec(self.catalog, settings)
        self.producer = EventProducer(settings, self.catalog, self.codec)

    def send(self, topic: str, event: dict[str, Any], tenant: str) -> str:
        return self.producer.send(topic, event, tenant=tenant).event_id

    def send_many(self, topic: str, events: list[dict[str, Any]], tenant: str) -> None:
        self.producer.send_all([self.producer.prepare(topic, e, tenant=tenant) for e in events])

    def collect(
        self, topic: str, done: Callable[[list[ConsumedEvent]], bool], timeout_s: float = 60.0,
        keep: Callable[[ConsumedEvent], bool] = lambda e: True,
    ) -> list[ConsumedEvent]:
        """Events of `topic` matching `keep`, read until `done(events)` holds (or TimeoutError)."""
        consumer = EventConsumer(self.settings, self.catalog, self.codec, [topic],
                                 group_id=f"test-{uuid.uuid4().hex[:8]}", from_beginning=True, commit=False)
        found: list[ConsumedEvent] = []
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                event = consumer.poll(0.5)
                if event is not None and keep(event):
                    found.append(event)
                if done(found):
                    return found
        finally:
            consumer.close()
        raise TimeoutError(f"{topic}: condition not met within {timeout_s}s; got {len(found)} events")


def opa_binary(state_dir: Path) -> Path | None:
    """The pinned OPA, built once with `go install` into the state dir (None when Go is missing)."""
    return go_installed(state_dir, "opa", "github.com/open-policy-agent/opa", OPA_VERSION)
