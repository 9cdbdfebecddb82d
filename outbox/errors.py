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


class SleepDisabled(OutboxError):
    """ENABLE_SLEEP is off for the tenant: the sleep endpoints refuse (HTTP 409), saying how to turn it on."""


class TransitionNotSeen(OutboxError):
    """A sleep request was written but its transition did not show in time (HTTP 504)."""

    def __init__(self, message: str, request_id: str) -> None:
        super().__init__(message)
        self.request_id = request_id


class RateLimited(OutboxError):
    """A token made more calls than its rate allows (HTTP 429); `retry_after_s` says when to try again."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# --- Writer and relay ----------------------------------------------------------------------
class EmitError(OutboxError):
    """An emit was refused before anything was written: bad tenant, dedupe key, header or event."""


class RelayError(OutboxError):
    """The relay cannot run: a bad relay setting, the outbox table missing, or the database gone."""
