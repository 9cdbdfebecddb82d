"""A stand-in platform component for supervisor tests: serves /healthz and /readyz, exits on SIGTERM.

    python fake_component.py PORT NOT_READY_FOR_S [stubborn|stall]

`stubborn` ignores SIGTERM; `stall` reports a failing `stall` check once warmed up (as a stuck stream does).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, DELAY = int(sys.argv[1]), float(sys.argv[2])
MODE = sys.argv[3] if len(sys.argv) > 3 else ""
STUBBORN = MODE == "stubborn"
STARTED = time.monotonic()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        warm = time.monotonic() - STARTED >= DELAY
        checks = {"warmup": {"ok": warm, "detail": "warming up"}}
        if MODE == "stall" and warm:
            checks["stall"] = {"ok": False, "detail": "committed offsets stuck"}
        ready = self.path == "/healthz" or all(c["ok"] for c in checks.values())
        body = json.dumps({"ready": ready, "checks": checks}).encode()
        self.send_response(200 if ready else 503)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _stop(signum: int, frame: object) -> None:
    sys.exit(0)


signal.signal(signal.SIGTERM, signal.SIG_IGN if STUBBORN else _stop)
server = HTTPServer(("127.0.0.1", PORT), Handler)
server.timeout = 0.2
deadline = time.monotonic() + 120  # never outlive a test by much
while time.monotonic() < deadline:
    server.handle_request()
