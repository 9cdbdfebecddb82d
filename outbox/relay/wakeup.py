"""How the relay waits for work: coalesced LISTEN/NOTIFY while idle, an adaptive poll otherwise.

Migrations 0002/0003 install the writers' half (a deferred constraint trigger on
outbox_events, so it runs while the writer's transaction commits, once per transaction) and
the SQL functions used here. The protocol:

* The relay LISTENs on its schema's channel once, at start.
* When a claim finds nothing and nothing is in flight, the relay takes an exclusive
  session-level advisory lock (`outbox_relay_wait_idle(ms)`, waiting at most
  `SOMA_OUTBOX_RELAY_POLL_MAX_S`). A committing writer holds the same lock *shared* for the
  duration of its commit, so once the relay has it, every writer that committed before is
  visible to the relay's next claim, and every later one sees the lock (already while the
  relay waits for it: a queued exclusive request makes new try-shared requests fail). The
  relay claims once more and, still finding nothing, waits for a notification.
* A committing writer that cannot take the lock shared knows a relay is idle and NOTIFYs.
  Writers never NOTIFY while the relay is busy, so commits do not queue on PostgreSQL's
  notify lock (the ~500-600 commits/s ceiling of NOTIFY-per-transaction designs).
* On a notification (or a timeout) the relay releases the lock (`outbox_relay_busy()`).

While rows keep arriving the relay never idles: it claims back to back (pipelined). The wait for
the lock replaces a poll interval: the relay looks again the moment the commits in progress end.
"""

from __future__ import annotations

import contextlib
import select
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from outbox.errors import RelayError
from soma.errors import first_line

LISTEN = text("SELECT outbox_relay_listen()")
WAIT_IDLE = text("SELECT outbox_relay_wait_idle(:timeout_ms)")
BUSY = text("SELECT outbox_relay_busy()")


class Wakeup:
    """The relay's LISTEN connection and idle lock (one dedicated, autocommit connection)."""

    def __init__(self, engine: Engine) -> None:
        self._conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            self.channel = str(self._conn.execute(LISTEN).scalar())
        except ProgrammingError as exc:  # undefined function / table: the schema is not migrated
            self._conn.close()
            raise RelayError(
                f"outbox relay: the database is not migrated; run `soma db upgrade` ({first_line(exc)})"
            ) from exc
        self.idle = False
        driver: Any = self._conn.connection.driver_connection
        self._raw: psycopg.Connection[Any] = driver

    def try_idle(self, wait_s: float = 0.0) -> bool:
        """Advertise idleness once no writer is committing (waiting up to `wait_s` for the commits in
        progress to end; meanwhile new committers already NOTIFY). True when the relay is now idle."""
        if not self.idle:
            self._drain()
            timeout_ms = max(1, int(wait_s * 1000))
            self.idle = bool(self._conn.execute(WAIT_IDLE, {"timeout_ms": timeout_ms}).scalar())
        return self.idle

    def wait(self, timeout_s: float) -> bool:
        """Wait (idle) for a writer's notification; True if one came. The socket is waited on here, in one
        select: psycopg's `notifies(timeout)` wakes every 0.1 s (to notice a Ctrl-C) while nothing comes."""
        got = self._pending()
        if not got and select.select([self._raw.fileno()], [], [], max(0.001, timeout_s))[0]:
            got = self._pending()
        if got:  # not inside `_pending`'s loop: it holds the connection's lock
            self._drain()
        return got

    def _pending(self) -> bool:
        """A notification already received (kept by psycopg while a query ran) or readable now, no waiting."""
        got = False
        for _ in self._raw.notifies(timeout=0.0, stop_after=1):
            got = True
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
