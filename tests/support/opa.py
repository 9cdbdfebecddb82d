"""A real OPA server for a test, on a free port, and a slow front for it.

`opa_server` starts the pinned OPA binary with the given policies and stops it by pid (SIGTERM,
a short grace, SIGKILL) when the block ends; `SlowFront` answers every request only after a
delay, forwarding it to a real OPA then, so a decision call can be made to time out.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from soma.settings import Settings
from tests.support.procs import REPO, background, wait_for
from tests.support.streams import free_port_base, opa_binary, port_of

LEADER_POLICY = REPO / "policies" / "opa" / "leader.rego"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1):  # noqa: S310 - a loopback test URL
            return True
    except OSError:
        return False


def opa_decisions(settings: Settings) -> dict[str, float]:
    """The running integrator's `soma_auth_decisions_total{action="leader_change"}` by result, from its /metrics."""
    url = f"http://127.0.0.1:{port_of(settings, 'integrator')}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        families = text_string_to_metric_families(response.read().decode())
    return {s.labels["result"]: s.value for f in families for s in f.samples
            if s.name == "soma_auth_decisions_total" and s.labels.get("action") == "leader_change"}


@contextmanager
def opa_server(settings: Settings, log: Path, policies: Sequence[Path] = (LEADER_POLICY,),
               max_lifetime_s: float = 900) -> Iterator[str]:
    """The URL of a running OPA serving `policies` (skips the test when OPA cannot be had)."""
    binary = opa_binary(settings.stack.state_dir)
    if binary is None:
        pytest.skip("OPA not available (no Go toolchain to build it)")
    port = free_port_base(1)
    argv = [str(binary), "run", "--server", "--addr", f"127.0.0.1:{port}", *map(str, policies)]
    with background(argv, settings, log, max_lifetime_s=max_lifetime_s, grace_s=3):
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(url), 30, what="OPA health")
        yield url


class SlowFront:
    """A loopback HTTP server that waits `delay_s` on every POST, then forwards it to `target` (502 when
    `target` does not answer); GETs (health) are forwarded at once."""

    def __init__(self, target: str, delay_s: float) -> None:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # /health (readiness): forwarded at once
                self._forward(None)

            def do_POST(self) -> None:  # a decision: forwarded after the delay
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(front.delay_s)  # the slowness under test, bounded by delay_s
                self._forward(body)

            def _forward(self, body: bytes | None) -> None:
                request = urllib.request.Request(  # noqa: S310 - a loopback test URL
                    target + self.path, data=body, headers={"Content-Type": "application/json"}
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                        payload, status = answer.read(), answer.status
                except OSError:  # OPA stopped: the front answers 502, as a gateway would
                    payload, status = b"{}", 502
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up and closed the socket
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.delay_s = delay_s
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="slow-opa")
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
