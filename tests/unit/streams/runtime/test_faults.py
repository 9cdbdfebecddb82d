"""Whose fault a failure is: infrastructure exits, anything else is the record's, with a reason."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from soma.contracts.bounded_json import JsonLimitExceeded
from soma.contracts.limits import RecordTooLarge
from soma.errors import EventValidationError, InfrastructureUnavailable
from streams.errors import InvalidInput, RefusedWrite
from streams.runtime.faults import (
    DECODE,
    PROCESSING,
    REASONS,
    REFUSED,
    TOO_LARGE,
    VALIDATION,
    is_infrastructure,
    reason_of,
)


@pytest.mark.parametrize("exc", [
    InfrastructureUnavailable("kafka down"), KafkaConnectionError("no broker"), KafkaTimeoutError(),
    RedisConnectionError("refused"), OperationalError("SELECT 1", {}, Exception("gone")),
    ConnectionRefusedError(), ConnectionResetError(),
])
def test_infrastructure_faults_stop_the_process(exc: Exception) -> None:
    assert is_infrastructure(exc)


@pytest.mark.parametrize(("exc", "reason"), [
    (RecursionError("maximum recursion depth exceeded"), PROCESSING),
    (KeyError("tenant_id"), PROCESSING),
    (AttributeError("no such thing"), PROCESSING),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), PROCESSING),
    (ZeroDivisionError(), PROCESSING),
    (InvalidInput("confidence must be finite"), VALIDATION),
    (JsonLimitExceeded("arguments_json: JSON too deeply nested"), VALIDATION),
    (RecordTooLarge("memory.writes: record of 2000000 bytes"), TOO_LARGE),
    (MessageSizeTooLargeError("The message is 2000000 bytes"), TOO_LARGE),
    (RefusedWrite("PostgreSQL refused the write (SQLSTATE 22P05)"), REFUSED),
    (EventValidationError("tool.results: field 'x'"), PROCESSING),
])
def test_every_other_exception_is_the_records_with_a_reason(exc: Exception, reason: str) -> None:
    assert not is_infrastructure(exc)
    assert reason_of(exc) == reason
    assert reason in REASONS
    assert DECODE in REASONS
