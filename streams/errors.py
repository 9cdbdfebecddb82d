"""Expected failures of the stream processors."""

from __future__ import annotations

from soma.errors import SomaError


class StreamError(SomaError):
    """Root of the streams' expected failures."""


class InvalidInput(StreamError):
    """A decoded record the stream cannot process for its own reasons (it goes to the DLQ)."""


class ToolRegistryError(StreamError):
    """A tool plug-in could not be loaded or registered."""


class ResponderError(StreamError):
    """The configured responder could not be loaded."""


class RefusedWrite(InvalidInput):
    """PostgreSQL refused a replica write for the record's own reasons (SQLSTATE class 22 or 23)."""
