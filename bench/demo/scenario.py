"""The `soma demo` run: two fresh tenants, the chat and replay steps; the cog steps are in `cog`."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.demo.cog import CogSteps
from bench.demo.endpoints import endpoints
from bench.demo.hops import INFO, MISSED, Hop
from bench.demo.observe import Observer
from bench.demo.recorder import Chain
from bench.demo.sleep import SleepSteps
from soma.settings import Settings, env_name

TOPICS = ("chat.messages", "tool.requests", "tool.results", "memory.writes", "cog.global_frame", "cog.segments",
          "config_updates", "outbox.audit", "cog.sleep_requests", "cog.sleep")


@dataclass
class Demo(CogSteps, SleepSteps):
    settings: Settings
    hop_timeout_s: float = 30.0
    enable_cog: bool = True
    enable_sleep: bool = True
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
                self.sleep_cycle()
                self.replay()
        finally:
            self.observer.stop()
            self.engine.dispose()
        return self.hops

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

    def replay(self) -> None:
        from soma.ops.supervisor.local_token import with_local_admin_token
        from soma.settings.tokens import token_covering

        step = "replay (admin API)"
        chain = Chain()
        if self.globex_row is None:
            return
        row_id, event_id = self.globex_row
        configured = with_local_admin_token(self.settings).admin.tokens  # `soma up`'s generated one if unset
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
