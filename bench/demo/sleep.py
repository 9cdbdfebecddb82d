"""The demo's sleep step: ENABLE_SLEEP on for acme, deep for a few seconds through the admin API, the
integrator's transition (cog.sleep, Redis `sleep:{tenant}`), then its TTL wake.

The I/O is behind three methods a test can replace: `config` (publish a live setting, Recorder's),
`admin_call` (the admin HTTP API) and `cached_state` (Redis); the observer is the demo's topic reader.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from bench.demo.endpoints import endpoints
from bench.demo.hops import INFO, MISSED, Hop
from bench.demo.observe import Seen
from bench.demo.recorder import Chain, Recorder
from soma.settings import env_name

DEMO_SLEEP_S = 8  # how long acme sleeps deep: long enough to see the state, short enough to see the wake
SLEEP_MODE = "/admin/brain/sleep_mode"


def describe_transition(value: dict[str, Any]) -> str:
    params = value.get("params") or {}
    until = f" until={value['until']}" if value.get("until") else ""
    return (f"seq={value['seq']} {value['from_state']} -> {value['to_state']} ({value['reason']}){until} "
            f"eta={params.get('eta')}")


def deep_request() -> dict[str, Any]:
    return {"state": "deep", "for": f"{DEMO_SLEEP_S}s"}


class SleepSteps(Recorder):
    """Step 5 of the scenario, for tenant `acme`."""

    acme: str
    redis: Any
    enable_sleep: bool

    # --- I/O (replaced in tests) ------------------------------------------------------------------
    def admin_call(self, method: str, path: str, tenant: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(status, JSON answer) of an admin API call with a token covering `tenant`; status 0: no answer."""
        from soma.ops.supervisor.local_token import with_local_admin_token
        from soma.settings.tokens import token_covering

        configured = with_local_admin_token(self.settings).admin.tokens  # `soma up`'s generated one if unset
        token = token_covering(configured.get_secret_value() if configured else "", tenant)
        if token is None:
            return 0, {"detail": f"{env_name('admin_tokens')} has no token covering {tenant}"}
        url = f"{endpoints(self.settings)['admin']}{path}?tenant={tenant}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method, headers={  # noqa: S310
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.hop_timeout_s) as response:  # noqa: S310
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, {"detail": f"HTTP {exc.code}"}
        except (OSError, ValueError) as exc:
            return 0, {"detail": type(exc).__name__}

    def cached_state(self, tenant: str) -> dict[str, Any] | None:
        from redis import RedisError

        from soma.errors import InfrastructureUnavailable
        from soma.sleep.policy import redis_key

        try:
            raw = self.redis.get(redis_key(tenant))
        except RedisError as exc:
            raise InfrastructureUnavailable(f"redis: {exc} ({env_name('redis_url')})") from None
        return json.loads(raw) if raw is not None else None

    # --- the step -------------------------------------------------------------------------------
    def _ask_deep(self, step: str, chain: Chain) -> str | None:
        """PUT sleep_mode deep; a 409 (the API has not seen ENABLE_SLEEP yet: it reads live settings
        every SOMA_ADMIN_LIVE_CACHE_S) is asked again until the hop times out. The request id, or None."""
        started = time.time()
        deadline = time.monotonic() + self.hop_timeout_s
        while True:
            status, answer = self.admin_call("PUT", SLEEP_MODE, self.acme, deep_request())
            if status == 202:
                self.add(Hop(step, f"admin API wrote the sleep request (deep for {DEMO_SLEEP_S}s)",
                             f"PUT {SLEEP_MODE}", self.acme, f"request={answer['request_id']} until={answer['until']}",
                             time.time() - started))
                return str(answer["request_id"])
            if status != 409 or time.monotonic() > deadline:
                chain.broken = True
                self.add(Hop(step, "admin API wrote the sleep request", f"PUT {SLEEP_MODE}", self.acme,
                             status=MISSED, note=f"HTTP {status}: {str(answer.get('detail'))[:120]}"))
                return None
            time.sleep(0.5)

    def sleep_cycle(self) -> None:
        step = "sleep"
        chain = Chain()
        if not self.enable_sleep:
            self.add(Hop(step, "ENABLE_SLEEP left as configured", "config_updates", self.acme, status=INFO,
                         note="--no-enable-sleep: the sleep hops are not run"))
            return
        self.config(step, chain, "ENABLE_SLEEP", "true", self.acme)
        if chain.broken:
            return
        started = time.time()
        request_id = self._ask_deep(step, chain)
        if request_id is None:
            return
        self.expect(chain, step, "relay published the request", "cog.sleep_requests", self.acme,
                    lambda s: s.value["event_id"] == request_id,
                    lambda s: f"to_state={s.value['to_state']} reason={s.value['reason']}", started)
        entered = self.expect(chain, step, "integrator entered deep", "cog.sleep", self.acme,
                              lambda s: s.value.get("request_id") == request_id,
                              lambda s: describe_transition(s.value), started)

        def cached() -> tuple[str, float] | None:
            state = self.cached_state(self.acme)
            if state is None or entered is None or int(state.get("seq", 0)) < int(entered.value["seq"]):
                return None
            return f"state={state['to_state']} seq={state['seq']}", time.time()

        self.poll(Chain(broken=chain.broken), step, "integrator cached the state", f"redis sleep:{self.acme}",
                  self.acme, cached, started)
        seq = int(entered.value["seq"]) if entered is not None else -1
        self.expect(chain, step, f"TTL wake after {DEMO_SLEEP_S}s", "cog.sleep", self.acme,
                    lambda s: _is_wake(s, seq), lambda s: describe_transition(s.value), started,
                    timeout_s=DEMO_SLEEP_S + self.hop_timeout_s)


def _is_wake(seen: Seen, entered_seq: int) -> bool:
    value = seen.value
    return value["to_state"] == "awake" and value["reason"] == "ttl_wake" and int(value["seq"]) == entered_seq + 1
