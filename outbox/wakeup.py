"""How the relay waits for work: coalesced LISTEN/NOTIFY while idle, an adaptive poll otherwise.

Migration 0002 installs the writers' half (a statement trigger on outbox_events) and the SQL
functions used here. The protocol:

* The relay LISTENs on its schema's channel once, at start.
* When a claim finds nothing and nothing is in flight, the relay tries to take an exclusive
  session-level advisory lock (`outbox_relay_try_idle()`). Every writer transaction holds the
  same lock *shared* from its INSERT until it ends, so the relay gets it only when no writer
  that inserted is still open; it then claims once more (seeing every such row) and, still
  finding nothing, waits for a notification.
* A writer that cannot take the lock shared knows a relay is idle and NOTIFYs (at commit).
  Writers never NOTIFY while the relay is busy, so commits do not queue on the notify lock.
* On a notification (or a timeout) the relay releases the lock (`outbox_relay_busy()`).

When the lock is not free (writers mid-transaction), the relay polls with a short wait that
doubles while claims stay empty (`PollPacer`) and resets as soon as one finds rows.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psycopg
from sqlalchemy import Engine, text

from outbox.errors import RelayError

LISTEN = text("SELECT outbox_relay_listen()")
TRY_IDLE = text("SELECT outbox_relay_try_idle()")
BUSY = text("SELECT outbox_relay_busy()")


class Wakeup:
    """The relay's LISTEN connection and idle lock (one dedicated, autocommit connection)."""

    def __init__(self, engine: Engine) -> None:
        self._conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            self.channel = str(self._conn.execute(LISTEN).scalar())
        except Exception as exc:
            self._conn.close()
            raise RelayError(
                "outbox: the relay's wake-up functions are missing; run `soma db upgrade`"
                f" ({str(exc).strip().splitlines()[0]})"
            ) from exc
        self.idle = False
        driver: Any = self._conn.connection.driver_connection
        self._raw: psycopg.Connection[Any] = driver

    def try_idle(self) -> bool:
        """Advertise idleness if no writer is mid-transaction; True when the relay is now idle."""
        if not self.idle:
            self._drain()
            self.idle = bool(self._conn.execute(TRY_IDLE).scalar())
        return self.idle

    def wait(self, timeout_s: float) -> bool:
        """Wait (idle) for a writer's notification; True if one came."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        for _ in self._raw.notifies(timeout=max(0.0, deadline - time.monotonic()), stop_after=1):
            self._drain()
            return True
        return False

    def busy(self) -> None:
        """Stop advertising idleness: writers stop notifying."""
        if self.idle:
            self._conn.execute(BUSY)
            self.idle = False

    def _drain(self) -> None:
        """Drop notifications that arrived while busy (they only mean "rows were written")."""
        for _ in self._raw.notifies(timeout=0):
            pass

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.busy()
        with contextlib.suppress(Exception):
            self._conn.close()
