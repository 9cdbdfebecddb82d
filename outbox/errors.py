"""The outbox's expected failures. `OutboxError` is the root; every one is a one-line message."""

from __future__ import annotations

from soma.errors import SomaError


class OutboxError(SomaError):
    """Base of the outbox's expected failures (writer, relay, replay, admin API)."""


# --- Admin: inspection, replay and the HTTP API ------------------------------------------
class InvalidFilter(OutboxError):
    """A filter, cursor or request field is malformed; `field` names it (HTTP 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid {field}: {message}")
        self.field = field
        self.reason = message


class ReplayTooLarge(OutboxError):
    """A replay would copy more rows than SOMA_ADMIN_REPLAY_MAX_ROWS allows (HTTP 422)."""


class ReplayRecordTooLarge(OutboxError):
    """A chosen row's record would exceed its topic's current size limit: the whole replay is refused
    (HTTP 422); the message names the row id, topic, size and limit."""


class AccessDenied(OutboxError):
    """The caller's token does not cover the tenant or rows asked for (HTTP 403); names no row."""


class RowsNotFound(OutboxError):
    """Ids asked for by an all-tenant caller do not exist, or span tenants (HTTP 404)."""


class OutboxNotMigrated(OutboxError):
    """The outbox tables are missing: the database needs `soma db upgrade` (HTTP 503)."""


# --- Writer and relay ----------------------------------------------------------------------
class EmitError(OutboxError):
    """An emit was refused before anything was written: bad tenant, dedupe key, header or event."""


class RelayError(OutboxError):
    """The relay cannot run: a bad relay setting, the outbox table missing, or the database gone."""
