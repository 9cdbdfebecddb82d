"""The `soma demo` scenario: drive a short, realistic run through the running platform and watch each hop.

Two fresh tenants (`demo-acme-<run>`, `demo-globex-<run>`):

1. chat: acme's user message asks for a tool (`calc`); globex's does not. Both are written
   through the outbox writer (one transaction each), so the relay publishes them; then
   chat.messages -> tool.requests -> tool.results -> the role=tool chat message -> memory.writes
   -> rows of `memory_replica` in PostgreSQL.
2. cog: predictor updates for three domains (plan, act, recall) straight to Kafka, so the
   leader changes twice -> cog.global_frame, the Redis key `global_frame:{tenant}`, and two
   leader_change segments on cog.segments (a new leader held for SEGMENTER_DWELL_FRAMES frames).
   ENABLE_COG_THREADS (off by default) is switched on for acme only, with a tenant-scoped update.
3. live config: INTEGRATOR_TEMPERATURE for acme (tenant-scoped) -> the next frame carries it.
4. replay: globex's outbox row replayed through the admin HTTP API -> the relay publishes the
   copy (`replay-of` header) -> the AdminAudit event; the worker drops the duplicate (same id).

Every wait is bounded by `hop_timeout_s`; a hop that does not happen in time is reported as
missed and the hops that depend on it are skipped (not waited for).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from soma.cli.hops import INFO, MISSED, SEEN, SKIPPED, Hop
from soma.cli.observe import Observer, Seen
from soma.ops.supervisor.spec import STREAMS
from soma.settings import Settings, env_name

TOPICS = ("chat.messages", "tool.requests", "tool.results", "memory.writes", "cog.global_frame", "cog.segments",
          "config_updates", "outbox.audit")
# Predictor updates after the first frame: (domain, confidence). Each new leader holds 4 frames,
# more than the default dwell of 3, so the segmenter closes a leader_change segment twice.
COG_SEQUENCE = (("plan", 5.0), ("act", 50.0), ("act", 50.0), ("act", 50.0), ("act", 50.0),
                ("recall", 500.0), ("recall", 500.0), ("recall", 500.0), ("recall", 500.0))
DEMO_TEMPERATURE = "0.25"


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 (a listen address, not a bind)


def endpoints(settings: Settings) -> dict[str, str]:
    """Base URLs of the platform's processes (relay metrics, admin API, each stream's web port)."""
    urls = {}
    if settings.outbox_relay_metrics_port:
        urls["relay"] = f"http://{_local(settings.outbox_relay_metrics_host)}:{settings.outbox_relay_metrics_port}"
    urls["admin"] = f"http://{_local(settings.admin_host)}:{settings.admin_port}"
    for stream in STREAMS:
        urls[stream.component] = stream.base_url(settings)
    return urls


def _get_ok(url: str, timeout_s: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (http to our own processes)
            return 200 <= int(response.status) < 300
    except (OSError, ValueError):
        return False


def preflight(settings: Settings) -> list[Hop]:
    """One row per platform process: does it answer its health/readiness URL?"""
    probes = {"relay": ("/readyz", "/healthz"), "admin": ("/readyz", "/healthz")}
    hops = []
    for name, base in endpoints(settings).items():
        paths = probes.get(name, ("/readyz", "/ready"))
        ok_path = next((p for p in paths if _get_ok(base + p)), None)
        hops.append(Hop("platform", f"{name} answers", base + (ok_path or paths[-1]), "-",
                        status=SEEN if ok_path else MISSED, note="" if ok_path else "not reachable or not ready"))
    if not settings.outbox_relay_metrics_port:
        hops.append(Hop("platform", "relay answers", "-", "-", status=INFO,
                        note=f"{env_name('outbox_relay_metrics_port')}=0: address unknown, not checked"))
    return hops


@dataclass
class Chain:
    """Hops that depend on each other: once one is missed, the rest are skipped, not waited for."""

    broken: bool = False


@dataclass
class Demo:
    settings: Settings
    hop_timeout_s: float = 30.0
    enable_cog: bool = True
    report: Callable[[Hop], None] = lambda hop: None
    hops: list[Hop] = field(default_factory=list)

    def __post_init__(self) -> None:
        from outbox.writer import OutboxWriter
        from soma.clients import database_engine, redis_client
        from soma.contracts.catalog import load_catalog
        from soma.contracts.codec import Codec
        from soma.contracts.events import EventProducer

        run = uuid.uuid4().hex[:6]
        self.acme, self.globex = f"demo-acme-{run}", f"demo-globex-{run}"
        self.catalog = load_catalog()
        self.codec = Codec(self.catalog, self.settings)
        self.producer = EventProducer(self.settings, self.catalog, self.codec)
        self.writer = OutboxWriter(self.catalog, self.codec, self.settings)
        self.engine = database_engine(self.settings)
        self.redis = redis_client(self.settings)
        self.observer = Observer(self.settings, self.catalog, self.codec, TOPICS)
        self.sent_at: dict[str, float] = {}  # predictor update event id -> send time
        self.globex_row: tuple[int, str] | None = None

    # --- recording ------------------------------------------------------------------------------
    def add(self, hop: Hop) -> Hop:
        self.hops.append(hop)
        self.report(hop)
        return hop

    def expect(self, chain: Chain, step: str, hop: str, topic: str, tenant: str,
               predicate: Callable[[Seen], bool], describe: Callable[[Seen], str], since: float,
               timeout_s: float | None = None) -> Seen | None:
        """Wait for a record of `topic` and `tenant` matching `predicate`; record the hop either way."""
        if chain.broken:
            self.add(Hop(step, hop, topic, tenant, status=SKIPPED, note="after a missed hop"))
            return None
        seen = self.observer.wait(lambda s: s.topic == topic and s.tenant == tenant and predicate(s),
                                  self.hop_timeout_s if timeout_s is None else timeout_s)
        if seen is None:
            chain.broken = True
            self.add(Hop(step, hop, topic, tenant, status=MISSED,
                         note=f"not seen within {self.hop_timeout_s if timeout_s is None else timeout_s:.0f}s"))
            return None
        self.add(Hop(step, hop, topic, tenant, f"{describe(seen)} {seen.position}", seen.at - since))
        return seen

    def poll(self, chain: Chain, step: str, hop: str, where: str, tenant: str,
             probe: Callable[[], tuple[str, float] | None], since: float) -> bool:
        """Poll `probe` (-> (fields, time it happened)) until it answers or the hop times out."""
        if chain.broken:
            self.add(Hop(step, hop, where, tenant, status=SKIPPED, note="after a missed hop"))
            return False
        deadline = time.monotonic() + self.hop_timeout_s
        while True:
            answer = probe()
            if answer is not None:
                self.add(Hop(step, hop, where, tenant, answer[0], answer[1] - since))
                return True
            if time.monotonic() > deadline:
                chain.broken = True
                self.add(Hop(step, hop, where, tenant, status=MISSED,
                             note=f"not seen within {self.hop_timeout_s:.0f}s"))
                return False
            time.sleep(0.1)

    # --- the scenario -------------------------------------------------------------------------------
    def run(self) -> list[Hop]:
        from soma.clients import database_errors

        self.observer.start()
        try:
            with database_errors(self.settings):  # PostgreSQL unreachable: one line naming the setting
                cog = self.enable_cog_threads()
                self.chat()
                self.cog(cog)
                self.live_config(cog)
                self.replay()
        finally:
            self.observer.stop()
            self.engine.dispose()
        return self.hops

    def config(self, step: str, chain: Chain, name: str, value: str, tenant: str) -> float:
        from soma.cli.config_cmd import publish

        started = time.time()
        event = publish(self.settings, name, value, tenant=tenant, author="soma-demo")
        self.expect(chain, step, f"config update {name}={value} published", "config_updates", tenant,
                    lambda s: s.value["event_id"] == event["event_id"],
                    lambda s: f"v{s.value['version']} scope={tenant}", started)
        return started

    def enable_cog_threads(self) -> Chain:
        chain = Chain()
        if not self.enable_cog:
            self.add(Hop("cog threads", "ENABLE_COG_THREADS left as configured", "config_updates", self.acme,
                         status=INFO, note="--no-enable-cog: the cog hops need it on (soma config show)"))
            return chain
        self.config("cog threads", chain, "ENABLE_COG_THREADS", "true", self.acme)
        return chain

    def _write(self, tenant: str, message: dict[str, Any], step: str) -> tuple[int, str, float]:
        from sqlalchemy.orm import Session

        dedupe = f"demo:{message['session_id']}:{message['sequence']}"
        with Session(self.engine) as session, session.begin():
            row = self.writer.emit(session, "chat.messages", message, tenant=tenant, dedupe_key=dedupe)
            row_id, event_id = int(row.id), str(row.event_id)
        committed = time.time()
        self.add(Hop(step, "outbox row committed (writer)", "outbox_events", tenant,
                     f"id={row_id} chat.messages dedupe={dedupe}", None))
        return row_id, event_id, committed

    def _replica(self, tenant: str, keys: list[str]) -> Callable[[], tuple[str, float] | None]:
        from sqlalchemy import text

        query = text("SELECT memory_key, applied_at FROM memory_replica WHERE tenant_id = :tenant"
                     " AND memory_key = ANY(:keys)")

        def probe() -> tuple[str, float] | None:
            with self.engine.connect() as conn:
                rows = conn.execute(query, {"tenant": tenant, "keys": keys}).all()
            if len(rows) < len(keys):
                return None
            return f"{len(rows)} row(s): {', '.join(sorted(r[0] for r in rows))}", max(r[1].timestamp() for r in rows)

        return probe

    def chat(self) -> None:
        call_id = f"call-{uuid.uuid4().hex[:8]}"
        acme_msg = {"session_id": "s-1", "sequence": 1, "role": "user", "content": "what is 6 times 7?",
                    "tool_calls": [{"call_id": call_id, "tool": "calc",
                                    "arguments_json": json.dumps({"op": "mul", "a": 6, "b": 7})}]}
        globex_msg = {"session_id": "s-1", "sequence": 1, "role": "user", "content": "hello from globex"}
        step_a, step_g = "chat + tool call", "chat"
        _, acme_id, t_a = self._write(self.acme, acme_msg, step_a)
        globex_row, globex_id, t_g = self._write(self.globex, globex_msg, step_g)
        self.globex_row = (globex_row, globex_id)

        a = Chain()
        self.expect(a, step_a, "relay published the user message", "chat.messages", self.acme,
                    lambda s: s.value["event_id"] == acme_id,
                    lambda s: f"session={s.value['session_id']} seq=1 role=user tool_calls=1", t_a)
        self.expect(a, step_a, "worker requested the tool", "tool.requests", self.acme,
                    lambda s: s.value["requested_by"] == acme_id,
                    lambda s: f"call_id={s.value['call_id']} tool={s.value['tool']}", t_a)
        self.expect(a, step_a, "tools stream ran it", "tool.results", self.acme,
                    lambda s: s.value["call_id"] == call_id,
                    lambda s: f"status={s.value['status']} output={s.value.get('output')} "
                              f"{s.value.get('duration_ms')} ms", t_a)
        tool_msg = self.expect(a, step_a, "worker folded the result back (role=tool)", "chat.messages", self.acme,
                               lambda s: s.value["role"] == "tool" and s.value.get("tool_call_id") == call_id,
                               lambda s: f"seq={s.value['sequence']} content={s.value['content']}", t_a)
        self.expect(a, step_a, "memory write of the user message", "memory.writes", self.acme,
                    lambda s: s.value.get("source_event_id") == acme_id,
                    lambda s: f"key={s.value['memory_key']}", t_a)
        tool_msg_id = tool_msg.value["event_id"] if tool_msg is not None else ""
        self.expect(a, step_a, "memory write of the tool message", "memory.writes", self.acme,
                    lambda s: s.value.get("source_event_id") == tool_msg_id,
                    lambda s: f"key={s.value['memory_key']}", t_a)
        self.poll(a, step_a, "replicator upserted the rows", "memory_replica (PostgreSQL)", self.acme,
                  self._replica(self.acme, ["chat:s-1:000000000001", "chat:s-1:000000000002"]), t_a)

        g = Chain()
        self.expect(g, step_g, "relay published the user message", "chat.messages", self.globex,
                    lambda s: s.value["event_id"] == globex_id,
                    lambda s: f"session={s.value['session_id']} seq=1 role=user", t_g)
        self.expect(g, step_g, "memory write of the message", "memory.writes", self.globex,
                    lambda s: s.value.get("source_event_id") == globex_id,
                    lambda s: f"key={s.value['memory_key']}", t_g)
        self.poll(g, step_g, "replicator upserted the row", "memory_replica (PostgreSQL)", self.globex,
                  self._replica(self.globex, ["chat:s-1:000000000001"]), t_g)

    def _update(self, domain: str, confidence: float) -> str:
        event_id = str(uuid.uuid4())
        self.sent_at[event_id] = time.time()
        self.producer.send("cog.predictor_updates", {
            "event_id": event_id, "source_kind": "state", "predictor_id": "demo", "domain": domain,
            "confidence": confidence, "evidence": {"demo": "soma demo"},
        }, tenant=self.acme)
        return event_id

    def _cause(self, frame: Seen) -> float:
        """Send time of the predictor update a frame came from (its id is derived from the update's)."""
        from soma.contracts.ids import derive_id

        for update_id, sent in self.sent_at.items():
            if derive_id(update_id, "frame") == frame.value["event_id"]:
                return sent
        return frame.at

    def _first_frame(self, chain: Chain, step: str) -> Seen | None:
        """Send `plan` updates (same confidence, so the same state) until the integrator answers one."""
        deadline = time.monotonic() + self.hop_timeout_s
        while time.monotonic() < deadline:
            self._update("plan", 5.0)
            seen = self.observer.wait(lambda s: s.topic == "cog.global_frame" and s.tenant == self.acme, 1.0)
            if seen is not None:
                self.add(Hop(step, "integrator emitted a frame", "cog.global_frame", self.acme,
                             f"seq={seen.value['frame_seq']} leader={seen.value['leader']} {seen.position}",
                             seen.at - self._cause(seen)))
                return seen
        chain.broken = True
        self.add(Hop(step, "integrator emitted a frame", "cog.global_frame", self.acme, status=MISSED,
                     note=f"none within {self.hop_timeout_s:.0f}s: is ENABLE_COG_THREADS on for {self.acme}? "
                          f"(soma config show --tenant {self.acme})"))
        return None

    def _frame_fields(self, s: Seen) -> str:
        weights = s.value["weights"]
        return (f"seq={s.value['frame_seq']} {s.value.get('previous_leader')} -> {s.value['leader']} "
                f"(w={weights.get(s.value['leader'], 0):.2f})")

    def cog(self, chain: Chain) -> None:
        step = "cog: leaders + segments"
        if chain.broken:
            self.add(Hop(step, "predictor updates", "cog.predictor_updates", self.acme, status=SKIPPED,
                         note="ENABLE_COG_THREADS was not switched on"))
            return
        if self._first_frame(chain, step) is None:
            return
        ids = [self._update(domain, confidence) for domain, confidence in COG_SEQUENCE]
        self.add(Hop(step, f"{len(ids)} predictor updates sent (plan, act, recall)", "cog.predictor_updates",
                     self.acme, "straight to Kafka (soma.events)", None))
        for before, after in (("plan", "act"), ("act", "recall")):
            frame = self.observer.wait(
                lambda s, b=before, a=after: s.topic == "cog.global_frame" and s.tenant == self.acme  # type: ignore[misc]
                and s.value["leader"] == a and s.value.get("previous_leader") == b, self.hop_timeout_s)
            if frame is None:
                chain.broken = True
                self.add(Hop(step, f"leader change {before} -> {after}", "cog.global_frame", self.acme,
                             status=MISSED, note=f"not seen within {self.hop_timeout_s:.0f}s"))
                continue
            self.add(Hop(step, f"leader change {before} -> {after}", "cog.global_frame", self.acme,
                         f"{self._frame_fields(frame)} {frame.position}", frame.at - self._cause(frame)))
        last_frame = self.observer.wait(
            lambda s: s.topic == "cog.global_frame" and s.tenant == self.acme and
            s.value["event_id"] == _derive(ids[-1], "frame"), 0 if chain.broken else self.hop_timeout_s)

        def cached() -> tuple[str, float] | None:
            from redis import RedisError

            from soma.errors import InfrastructureUnavailable

            try:
                raw = self.redis.get(f"global_frame:{self.acme}")
            except RedisError as exc:
                raise InfrastructureUnavailable(f"redis: {exc} ({env_name('redis_url')})") from None
            if raw is None or last_frame is None:
                return None
            frame = json.loads(raw)
            if frame.get("event_id") != last_frame.value["event_id"]:
                return None
            ttl = self.redis.ttl(f"global_frame:{self.acme}")
            return f"leader={frame['leader']} seq={frame['frame_seq']} ttl={ttl}s", time.time()

        redis_chain = Chain(broken=last_frame is None)
        self.poll(redis_chain, step, "integrator cached the latest frame", f"redis global_frame:{self.acme}",
                  self.acme, cached, self.sent_at[ids[-1]])
        for after in ("act", "recall"):
            segment = self.observer.wait(
                lambda s, a=after: s.topic == "cog.segments" and s.tenant == self.acme  # type: ignore[misc]
                and s.value["leader_after"] == a, self.hop_timeout_s)
            if segment is None:
                self.add(Hop(step, f"segment closed (new leader {after})", "cog.segments", self.acme,
                             status=MISSED, note=f"not seen within {self.hop_timeout_s:.0f}s"))
                continue
            v = segment.value
            frame = next(iter(self.observer.matching(
                lambda s, sid=v["event_id"]: s.topic == "cog.global_frame"  # type: ignore[misc]
                and _derive(s.value["event_id"], "segment:0") == sid)), None)
            since = self._cause(frame) if frame is not None else segment.at
            self.add(Hop(step, f"segment closed (new leader {after})", "cog.segments", self.acme,
                         f"{v['boundary_kind']} {v['leader_before']} -> {v['leader_after']} "
                         f"frames {v['start_frame_seq']}..{v['end_frame_seq']} {segment.position}",
                         segment.at - since))

    def live_config(self, cog: Chain) -> None:
        step = "live config"
        chain = Chain(broken=cog.broken)
        if chain.broken:
            self.add(Hop(step, f"INTEGRATOR_TEMPERATURE={DEMO_TEMPERATURE}", "config_updates", self.acme,
                         status=SKIPPED, note="needs the cog hops"))
            return
        started = self.config(step, chain, "INTEGRATOR_TEMPERATURE", DEMO_TEMPERATURE, self.acme)
        wanted = float(DEMO_TEMPERATURE)
        deadline = time.monotonic() + self.hop_timeout_s
        while not chain.broken and time.monotonic() < deadline:
            self._update("recall", 500.0)  # the same state; the next frame shows the temperature in effect
            frame = self.observer.wait(
                lambda s: s.topic == "cog.global_frame" and s.tenant == self.acme
                and abs(float(s.value["temperature"]) - wanted) < 1e-9, 0.5)
            if frame is not None:
                self.add(Hop(step, "integrator applied it to the next frame", "cog.global_frame", self.acme,
                             f"seq={frame.value['frame_seq']} temperature={frame.value['temperature']} "
                             f"entropy={frame.value['entropy']:.3f} {frame.position}", frame.at - started))
                return
        self.add(Hop(step, "integrator applied it to the next frame", "cog.global_frame", self.acme,
                     status=SKIPPED if chain.broken else MISSED,
                     note="after a missed hop" if chain.broken else f"not seen within {self.hop_timeout_s:.0f}s"))

    def replay(self) -> None:
        from outbox.admin.auth import token_covering
        from soma.ops.supervisor.local_token import with_local_admin_token

        step = "replay (admin API)"
        chain = Chain()
        if self.globex_row is None:
            return
        row_id, event_id = self.globex_row
        configured = with_local_admin_token(self.settings).admin_tokens  # `soma up`'s generated one if unset
        raw = configured.get_secret_value() if configured else ""
        token = token_covering(raw, self.globex)
        where = "POST /admin/outbox/replay"
        if token is None:
            self.add(Hop(step, "replay the globex row", where, self.globex, status=MISSED,
                         note=f"{env_name('admin_tokens')} has no admin-scoped token"))
            return
        url = f"{endpoints(self.settings)['admin']}/admin/outbox/replay"
        body = json.dumps({"ids": [row_id], "tenant": self.globex}).encode()
        request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        started = time.time()
        try:
            with urllib.request.urlopen(request, timeout=self.hop_timeout_s) as response:  # noqa: S310
                answer = json.loads(response.read())
        except (OSError, ValueError) as exc:
            detail = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else type(exc).__name__
            self.add(Hop(step, "replay the globex row", where, self.globex, status=MISSED, note=detail))
            return
        pair = (answer.get("sample") or [{}])[0]
        audit_id = answer.get("audit_event_id")
        self.add(Hop(step, "admin API copied the row", where, self.globex,
                     f"row {row_id} -> {pair.get('replay_id')} count={answer.get('count')}", time.time() - started))
        self.expect(chain, step, "relay published the copy", "chat.messages", self.globex,
                    lambda s: s.headers.get("replay-of") == str(row_id),
                    lambda s: f"replay-of={row_id} same event_id={s.value['event_id'] == event_id}", started)
        self.expect(Chain(), step, "audit event", "outbox.audit", self.globex,
                    lambda s: s.value["event_id"] == audit_id,
                    lambda s: f"action={s.value['action']} actor={s.value['actor']}", started)
        if chain.broken:
            return
        time.sleep(1.5)
        writes = self.observer.matching(lambda s: s.topic == "memory.writes" and s.tenant == self.globex
                                        and s.value.get("source_event_id") == event_id)
        if len(writes) <= 1:
            self.add(Hop(step, "worker dropped the duplicate (same event id)", "memory.writes", self.globex,
                         "no second memory write within 1.5 s", None, status=INFO))
        else:
            self.add(Hop(step, "worker re-emitted the memory write", "memory.writes", self.globex,
                         f"{len(writes)} writes; the replica keeps one row (same event id)", None, status=INFO))


def _derive(event_id: str, slot: str) -> str:
    from soma.contracts.ids import derive_id

    return derive_id(event_id, slot)


def where_to_look(settings: Settings, acme: str, globex: str) -> list[str]:
    urls = endpoints(settings)
    lines = [f"metrics ({name}): {url}/metrics" for name, url in urls.items() if name != "admin"]
    lines += [
        f"admin API: {urls['admin']}/docs (OpenAPI at /openapi.json)",
        "health of every process: soma health;  processes: soma ps",
        f"the demo's rows: soma outbox list --tenant {globex};  its live settings: soma config show --tenant {acme}",
        f"its events: soma consume chat.messages --from-beginning --tenant {acme} --max-messages 10",
    ]
    return lines
