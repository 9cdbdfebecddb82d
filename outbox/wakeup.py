"""How the relay waits for work: coalesced LISTEN/NOTIFY while idle, an adaptive poll otherwise.

Migrations 0002/0003 install the writers' half (a deferred constraint trigger on
outbox_events, so it runs while the writer's transaction commits, once per transaction) and
the SQL functions used here. The protocol:

* The relay LISTENs on its schema's channel once, at start.
* When a claim finds nothing and nothing is in flight, the relay tries to take an exclusive
  session-level advisory lock (`outbox_relay_try_idle()`). A committing writer holds the same
  lock *shared* for the duration of its commit, so once the relay has it, every writer that
  committed before is visible to the relay's next claim, and every later one sees the lock.
  The relay claims once more and, still finding nothing, waits for a notification.
* A committing writer that cannot take the lock shared knows a relay is idle and NOTIFYs.
  Writers never NOTIFY while the relay is busy, so commits do not queue on PostgreSQL's
  notify lock (the ~500-600 commits/s ceiling of NOTIFY-per-transaction designs).
* On a notification (or a timeout) the relay releases the lock (`outbox_relay_busy()`).

When the lock is not free (a writer committing at that very moment), the relay polls with a
short wait that doubles while claims stay empty (`PollPacer`) and resets once one finds rows.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

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
        except ProgrammingError as exc:  # undefined function / table: the schema is not migrated
            self._conn.close()
            first = str(exc.orig or exc).strip().splitlines()[0]
            raise RelayError(f"outbox relay: the database is not migrated; run `soma db upgrade` ({first})") from exc
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
        got = False
        for _ in self._raw.notifies(timeout=max(0.001, timeout_s), stop_after=1):
            got = True
        if got:  # not inside the loop above: it holds the connection's lock
            self._drain()
        return got

    def busy(self) -> None:
        """Stop advertising idleness: writers stop notifying."""
        if self.idle:
            self._conn.execute(BUSY)
            self.idle = False

    def _drain(self) -> None:
        """Drop notifications that arrived while busy (they only mean "rows were written")."""
        for _ in self._raw.notifies(timeout=0.0):
            pass

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.busy()
        with contextlib.suppress(Exception):
            self._conn.close()
