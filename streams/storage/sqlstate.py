"""Whose fault a PostgreSQL error is, by its SQLSTATE: the record's (dead-letter it) or the database's (retry).

Only two classes are the record's own: 22 (data exception: a value PostgreSQL refuses, e.g. a
`\\u0000` in JSONB, 22P05) and 23 (integrity constraint violation). Everything else is retried
with backoff and never dead-letters a good write: 08 (connection exception), 57P (operator
intervention: admin shutdown, crash shutdown, cannot connect now), 25006 (read-only standby
after a failover), 42501 (a missing grant), 40 (serialization failure, deadlock), 53 (out of
resources), and any error without a SQLSTATE (the connection could not be made at all), except
the driver's own DataError/IntegrityError raised before the statement reached the server (psycopg
refuses a NUL character in a text value that way): those are the record's.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.exc import DataError, IntegrityError

Verdict = Literal["record", "retry"]
RECORD_CLASSES = ("22", "23")


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error (psycopg's `sqlstate`, psycopg2's `pgcode`), SQLAlchemy-wrapped or not."""
    for candidate in (getattr(exc, "orig", None), exc, exc.__cause__):
        if candidate is None:
            continue
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
    return None


def classify(sqlstate: str | None) -> Verdict:
    """`record` for data and constraint errors (classes 22, 23), `retry` for everything else."""
    if sqlstate is not None and sqlstate[:2] in RECORD_CLASSES:
        return "record"
    return "retry"


def verdict(exc: BaseException) -> Verdict:
    """`classify` of the error's SQLSTATE; a driver-side data or integrity error without one is the record's."""
    code = sqlstate_of(exc)
    if code is None and isinstance(exc, DataError | IntegrityError):
        return "record"
    return classify(code)
