"""Helpers for stream integration tests: produce and collect (the stream workers: soma/ops/local_platform.py)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import ConsumedEvent, EventConsumer, EventProducer
from soma.ops import processes
from soma.ops.local_platform import free_port_base, stream_process, wait_ready
from soma.ops.supervisor.spec import stream_argv, stream_topology
from soma.settings import Settings
from tests.support.go_tools import go_installed
from tests.support.procs import REPO

__all__ = ["FAUST", "OPA_VERSION", "Bus", "Scrape", "free_port_base", "opa_binary", "port_of", "scrape",
           "stream_logged", "stream_process", "streams_running", "wait_ready"]

FAUST = str(Path(sys.executable).parent / "faust")
OPA_VERSION = "v1.4.2"


def port_of(settings: Settings, name: str) -> int:
    return stream_topology(name).web_port(settings)


class Scrape:
    """One read of a stream's /metrics, parsed by prometheus_client (the Prometheus text format)."""

    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    def matching(self, name: str, **labels: str) -> list[Sample]:
        """The samples called `name` (e.g. `x_total`, `x_count`) whose labels include `labels`."""
        return [s for s in self.samples if s.name == name and labels.items() <= s.labels.items()]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the matching samples (0 when there is none, as for a counter never incremented)."""
        return sum(s.value for s in self.matching(name, **labels))

    def label_names(self, name: str) -> set[frozenset[str]]:
        return {frozenset(s.labels) for s in self.matching(name)}


def scrape(settings: Settings, name: str) -> Scrape:
    """The stream `name`'s metrics now, read from its web port like Prometheus does."""
    url = f"http://127.0.0.1:{port_of(settings, name)}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    return Scrape([s for family in text_string_to_metric_families(body) for s in family.samples])


@contextmanager
def stream_logged(name: str, settings: Settings, log_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`stream_process` writing to `log_file`, and able to import `tests.support` (e.g. a test responder)."""
    env = settings.child_env(PYTHONPATH=str(REPO))
    with processes.background(stream_argv(name), log_file, env, max_lifetime_s=600.0, grace_s=10.0) as proc:
        yield proc


@contextmanager
def streams_running(names: tuple[str, ...], settings: Settings, log_dir: Path) -> Iterator[Settings]:
    """The streams `names` as real workers, all started, then each waited for until ready (90 s at most)."""
    with ExitStack() as stack:
        for name in names:
            stack.enter_context(stream_process(name, settings, log_dir))
        for name in names:
            wait_ready(settings, name, timeout_s=90)
        yield settings


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
