"""Circuit-driven sleep: a tenant whose relay circuit opens is asked to sleep light until it closes.

When a tenant's circuit opens and the live settings say so for that tenant (`ENABLE_SLEEP` and its
`SLEEP_POLICY.circuit_sleep`), the relay produces a SleepRequest (to light, reason circuit, requested
by "relay") straight to `cog.sleep_requests` with its own producer: the tenant's outbox rows are what
the open circuit holds back, so the request cannot wait in the outbox behind them. When the circuit
closes again, a request to awake follows (only for a tenant the relay asked to sleep). Once per
opening and closing, never per row; the integrator decides both (`decide`). A request that cannot be
built or delivered is logged and counted (`outbox_circuit_sleep_requests_total{result="failed"}`),
never raised: the relay goes on publishing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from outbox.relay.live import LiveMirror
from outbox.relay.policy import CircuitState
from soma.contracts.catalog import catalog_for
from soma.contracts.codec import Codec
from soma.contracts.events import OutgoingRecord, prepare
from soma.errors import SomaError, first_line
from soma.observability.logs import log_context
from soma.settings import Settings

log = logging.getLogger("outbox.relay")

TOPIC = "cog.sleep_requests"
REQUESTED_BY = "relay"

Produce = Callable[[OutgoingRecord, Callable[[KafkaError | None, Message], None]], None]
Count = Callable[[str, str], None]  # (to_state, result: sent | failed)


class CircuitSleep:
    """Turns circuit changes into sleep requests; `asleep`: tenants asked to sleep and not yet to wake."""

    def __init__(self, settings: Settings, live: LiveMirror, produce: Produce, count: Count) -> None:
        self.settings, self.live, self._produce, self._count = settings, live, produce, count
        self.asleep: set[str] = set()
        self._codec: Codec | None = None

    def enabled(self, tenant: str) -> bool:
        """ENABLE_SLEEP and SLEEP_POLICY.circuit_sleep, as this tenant sees them now."""
        return bool(self.live.get("enable_sleep", tenant)) and bool(self.live.get("sleep_policy", tenant).circuit_sleep)

    def changed(self, before: Mapping[str, CircuitState], after: Mapping[str, CircuitState]) -> None:
        """The circuits' states before and after a batch was judged (a tenant without a circuit: closed).
        Closed to open asks for light; back to closed, for awake. Half-open and a failed probe's reopening
        are neither: the tenant stays asleep until the circuit closes."""
        closed = [t for t, state in after.items() if state is CircuitState.CLOSED
                  and before.get(t, CircuitState.CLOSED) is not CircuitState.CLOSED]
        opened = [t for t, state in after.items() if state is CircuitState.OPEN
                  and before.get(t, CircuitState.CLOSED) is CircuitState.CLOSED]
        for tenant in opened:
            if tenant not in self.asleep and self.enabled(tenant):
                self.asleep.add(tenant)
                self._request(tenant, "light")
        for tenant in closed:
            if tenant in self.asleep:
                self.asleep.discard(tenant)
                self._request(tenant, "awake")

    def _request(self, tenant: str, to_state: str) -> None:
        event = {"tenant_id": tenant, "to_state": to_state, "reason": "circuit", "until": None,
                 "requested_by": REQUESTED_BY}
        with log_context(tenant=tenant):
            try:
                if self._codec is None:
                    self._codec = Codec(catalog_for(self.settings), self.settings)
                record = prepare(self._codec.catalog, self._codec, self.settings, TOPIC, event, tenant=tenant,
                                 key=tenant)
                self._produce(record, self._on_delivery(tenant, to_state))
            except (SomaError, KafkaException, BufferError, ValueError) as exc:
                self._failed(tenant, to_state, first_line(exc))
                return
            log.info("relay: circuit of tenant %r %s: asked it to sleep %s", tenant,
                     "open" if to_state != "awake" else "closed", to_state)

    def _on_delivery(self, tenant: str, to_state: str) -> Callable[[KafkaError | None, Message], None]:
        def report(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                self._failed(tenant, to_state, err.str())
            else:
                self._count(to_state, "sent")
        return report

    def _failed(self, tenant: str, to_state: str, error: str) -> None:
        self._count(to_state, "failed")
        with log_context(tenant=tenant):
            log.error("relay: sleep request (%s, circuit) for tenant %r not produced: %s", to_state, tenant, error)
