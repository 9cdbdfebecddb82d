"""Cheap, bounded dependency checks behind every process's `/readyz`.

Unlike `soma.observability.health` (a full produce/consume round trip, for `soma stack status`), these run
on every readiness probe, so each is one short network exchange with a deadline of
`SOMA_HEALTH_CHECK_TIMEOUT_S`, and a `Readiness` reuses its last report for
`SOMA_HEALTH_CACHE_S`:

- kafka: a TCP connection to one of the bootstrap servers;
- postgresql: `SELECT 1`, and each required table exists (i.e. the migrations ran);
- redis: `PING`;
- opa: `GET <SOMA_OPA_URL>/health` (only when the process uses OPA and it is configured).

A process adds checks of its own (`extra`: a name and a function returning ok and a detail),
e.g. the relay loop's heartbeat or a stream's partition assignment. The report is JSON:
``{"service": ..., "ready": bool, "checks": {"kafka": {"ok": true, "detail": "..."}, ...}}``.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from soma.errors import first_line
from soma.settings import Settings, env_name, mask_url

CheckResult = tuple[bool, str]
Check = Callable[[], CheckResult]
KNOWN = ("kafka", "postgresql", "redis", "opa")


class Readiness:
    """The readiness report of one process: its dependencies' checks plus its own, cached briefly."""

    def __init__(
        self,
        settings: Settings,
        service: str,
        needs: Sequence[str],
        *,
        tables: Sequence[str] = (),
        extra: Mapping[str, Check] | None = None,
    ) -> None:
        unknown = set(needs) - set(KNOWN)
        if unknown:
            raise ValueError(f"unknown readiness checks: {sorted(unknown)}")
        self.settings, self.service = settings, service
        self.timeout = settings.telemetry.health_check_timeout_s
        self.tables = tuple(tables)
        builders: dict[str, Check] = {
            "kafka": self._kafka, "postgresql": self._postgresql, "redis": self._redis, "opa": self._opa,
        }
        self.checks: dict[str, Check] = {
            name: builders[name] for name in needs if name != "opa" or settings.streams.opa_url
        }
        self.checks.update(extra or {})
        self._lock = threading.Lock()
        self._last: dict[str, Any] | None = None
        self._at = 0.0
        self._engine: Any = None
        self._redis_client: Any = None

    def report(self) -> dict[str, Any]:
        """Run the checks (or reuse a report younger than the cache time); never raises."""
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._at < self.settings.telemetry.health_cache_s:
                return self._last
            checks: dict[str, dict[str, Any]] = {}
            for name, check in self.checks.items():
                try:
                    ok, detail = check()
                except Exception as exc:  # a check must never take the endpoint down
                    ok, detail = False, f"{type(exc).__name__}: {first_line(exc, 200)}"
                checks[name] = {"ok": ok, "detail": detail}
            self._last = {"service": self.service, "ready": all(c["ok"] for c in checks.values()), "checks": checks}
            self._at = time.monotonic()
            return self._last

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._redis_client is not None:
            self._redis_client.close()

    # --- the dependency checks ---------------------------------------------------------------
    def _kafka(self) -> CheckResult:
        errors = []
        for host, port in self.settings.kafka_servers:
            try:
                with socket.create_connection((host, port), timeout=self.timeout):
                    return True, f"broker {host}:{port} accepts connections"
            except OSError as exc:
                errors.append(f"{host}:{port}: {exc.strerror or exc}")
        return False, f"unreachable ({env_name('kafka_bootstrap')}): {'; '.join(errors)}"

    def _postgresql(self) -> CheckResult:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        from soma.clients import database_engine

        if self._engine is None:
            options = self.settings.sqlalchemy_engine_options()
            connect_args = dict(options["connect_args"]) | {"connect_timeout": max(1, round(self.timeout))}
            self._engine = database_engine(
                self.settings, connect_args=connect_args, pool_size=1, max_overflow=0, pool_timeout=self.timeout,
            )
        url = self.settings.sqlalchemy_url()
        where = f"{url.host}:{url.port or 5432}/{url.database}"
        try:
            with self._engine.connect() as conn:
                conn.execute(text(f"SET statement_timeout = {int(self.timeout * 1000)}"))
                conn.execute(text("SELECT 1")).scalar_one()
                missing = [t for t in self.tables if conn.execute(
                    text("SELECT to_regclass(:t)"), {"t": t}).scalar_one() is None]
        except SQLAlchemyError as exc:
            original = getattr(exc, "orig", None) or exc
            return False, f"cannot connect to {where} ({env_name('database_url')}): {first_line(original, 200)}"
        if missing:
            return False, f"table {', '.join(missing)} missing at {where}: run `soma db upgrade`"
        return True, f"SELECT 1 ok at {where}"

    def _redis(self) -> CheckResult:
        import redis

        if self._redis_client is None:
            self._redis_client = redis.Redis.from_url(
                self.settings.redis_url_value(), socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        where = mask_url(self.settings.redis_url_value())
        try:
            self._redis_client.ping()
        except redis.RedisError as exc:
            return False, f"unreachable at {where} ({env_name('redis_url')}): {first_line(exc, 200)}"
        return True, f"PING ok at {where}"

    def _opa(self) -> CheckResult:
        base = (self.settings.streams.opa_url or "").rstrip("/")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=self.timeout) as response:  # noqa: S310
                status = int(response.status)
        except OSError as exc:
            return False, f"unreachable at {base} ({env_name('opa_url')}): {first_line(exc, 200)}"
        if status != 200:
            return False, f"{base}/health answered {status}"
        return True, f"{base}/health ok"
