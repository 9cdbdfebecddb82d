"""The transactional outbox, by role, in the order a row lives through it.

1. Written (`writer`, `models`): a service emits events in its own database transaction; the
   writer validates and encodes each event first, then inserts one `outbox_events` row per
   event, keyed by (tenant, dedupe key). The row exists only if the caller's transaction commits.
2. Claimed (`relay.claim`, `relay.policy`, `relay.wakeup`): the relay wakes on the writers'
   NOTIFY, and locks due rows fairly across tenants (FOR UPDATE SKIP LOCKED, per-tenant
   quotas, circuits) in a transaction of its own, kept open.
3. Published (`relay.publisher`): each row goes to Kafka exactly as stored (key, payload,
   headers) through an idempotent producer, and waits for the broker's report.
4. Sent, retried or dead (`relay.judge`, `relay.committer`): the judge reads the reports
   (acknowledged: sent; refused: failed with a backoff, or dead after the last attempt) and
   the committer writes that in the claim's transaction. A crash before the commit leaves the
   rows pending: at least once. `relay.service` runs this loop; `relay.metrics` exports it.
5. Replayed (`admin`): an operator lists and counts a tenant's rows and replays chosen ones as
   new pending rows (with a `replay-of` header), audited, from the CLI or the HTTP API; the
   relay then publishes them like any other row (back to step 2).

`errors` holds every expected failure; `cli` the `soma outbox` commands. Imports go to `soma`
only: never to `streams`.

The public API for services (`api`): `from outbox import emit, emit_async, Emitter`, loaded on
first use so `import outbox.relay...` does not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from outbox.api import Emitter, emit, emit_async

__all__ = ["Emitter", "emit", "emit_async"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from outbox import api

        return getattr(api, name)
    raise AttributeError(f"module 'outbox' has no attribute {name!r}")
