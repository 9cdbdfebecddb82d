"""The dead-letter tools' expected failures: `DlqError` is the root, each a one-line message."""

from __future__ import annotations

from soma.errors import SomaError


class DlqError(SomaError):
    """Base of the dead-letter tools' expected failures."""


class InvalidDlqRequest(DlqError):
    """A filter, id or cursor is malformed, or a selection cannot be redriven; `field` names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid {field}: {message}")
        self.field = field
        self.reason = message


class DeadLetterNotFound(DlqError):
    """No dead letter at this id (never written, or past the topic's retention)."""


class SelectionTooLarge(DlqError):
    """A redrive by filter matches more dead letters than one redrive may send (HTTP 422)."""


class ScanIncomplete(DlqError):
    """The `dlq` topic was not read to its end within the deadline, so a filter's matches are unknown."""
