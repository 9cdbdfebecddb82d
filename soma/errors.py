"""The root of every error the `soma` core raises on purpose.

Callers catch `SomaError` at a boundary (the CLI, an HTTP handler) and show its
one-line message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SomaError(Exception):
    """Base of the core's expected failures; `str(err)` is a one-line message for a person."""


class SettingsError(SomaError):
    """A setting is missing or malformed; the message names the environment variable."""


class InfrastructureUnavailable(SomaError):
    """Kafka, PostgreSQL or Redis cannot be reached at the configured address."""


class StackError(SomaError):
    """The local development stack could not be provisioned, started or stopped."""


class CatalogError(SomaError):
    """topics.yaml or a schema file is invalid; the message names the file and line."""


class EventValidationError(SomaError):
    """An event does not match its topic's schema; the message names the topic and the field."""


class SchemaCompatibilityError(SomaError):
    """A schema change would break readers of data written with a released version."""


class ConsumeError(SomaError):
    """A consumer (`soma.consume`) or dedupe store (`soma.dedupe`) was given a bad option or used wrongly."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an error's message (a driver's own error where SQLAlchemy wraps one), at most
    `limit` characters; the type's name when the message is empty. What a one-line report shows."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0][:limit] if lines else type(original).__name__
