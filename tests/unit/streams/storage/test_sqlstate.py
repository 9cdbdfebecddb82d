"""The replicator's PostgreSQL verdict by SQLSTATE: data and constraint errors are the record's, the rest retried."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DataError, IntegrityError, InternalError, OperationalError, ProgrammingError

from streams.storage.sqlstate import classify, sqlstate_of, verdict


class DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"driver error {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("code", ["22P05", "22001", "22003", "22P02", "23505", "23502", "23514"])
def test_data_and_constraint_errors_are_the_records(code: str) -> None:
    assert classify(code) == "record"


@pytest.mark.parametrize("code", [
    "25006",  # read-only standby (a failover in progress)
    "42501",  # a missing grant
    "08006", "08001", "08003",  # connection lost or never made
    "57P01", "57P03",  # admin shutdown, cannot connect now
    "40001", "40P01",  # serialization failure, deadlock
    "53100", "53300",  # disk full, too many connections
    "42P01",  # the table is missing (migrations not run): not the record's fault
    None,
])
def test_everything_else_is_retried(code: str | None) -> None:
    assert classify(code) == "retry"


def test_the_sqlstate_is_read_through_sqlalchemys_wrapper() -> None:
    wrapped = DataError("INSERT", {}, DriverError("22P05"))
    assert sqlstate_of(wrapped) == "22P05"
    assert verdict(wrapped) == "record"
    assert verdict(OperationalError("INSERT", {}, DriverError("25006"))) == "retry"
    assert verdict(ProgrammingError("INSERT", {}, DriverError("42501"))) == "retry"
    assert verdict(InternalError("INSERT", {}, DriverError("40001"))) == "retry"
    assert verdict(IntegrityError("INSERT", {}, DriverError("23505"))) == "record"


def test_a_driver_side_data_error_without_sqlstate_is_the_records() -> None:
    # psycopg refuses a NUL in a text value before sending it: a DataError with no SQLSTATE
    assert verdict(DataError("INSERT", {}, DriverError(None))) == "record"
    assert verdict(OperationalError("connect", {}, DriverError(None))) == "retry"
