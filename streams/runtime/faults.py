"""Whose fault a failure is: the infrastructure's (the process exits uncommitted) or the record's (DLQ).

Declared once for every stream: any exception while decoding, deciding or handling one record
dead-letters that record and the stream goes on, except the infrastructure faults below (the
broker, PostgreSQL, Redis unreachable), which reach `Batches.complete`: the process exits
without committing and the records are delivered again after the restart. OPA never raises
here: `LeaderPolicy` turns its unavailability into the tenant's fail mode. The replicator
classifies PostgreSQL errors itself, by SQLSTATE (`streams.storage.sqlstate`).
"""

from __future__ import annotations

from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError

from soma.contracts.bounded_json import JsonLimitExceeded
from soma.contracts.limits import RecordTooLarge
from soma.errors import InfrastructureUnavailable
from streams.errors import InvalidInput, RefusedWrite

INFRASTRUCTURE: tuple[type[BaseException], ...] = (
    InfrastructureUnavailable,  # soma's own "cannot reach Kafka/PostgreSQL/Redis"
    KafkaError,  # aiokafka: the producer or consumer lost the broker, a delivery not acknowledged
    # (except MessageSizeTooLargeError raised by the producer before sending: the record's own size)
    RedisConnectionError, RedisTimeoutError,
    OperationalError, InterfaceError,  # SQLAlchemy: the database connection failed
    ConnectionError,  # a socket refused or reset
)

# Reasons (`error_type` of the DLQ record and the `reason` label of soma_stream_dead_letters_total).
DECODE = "decode"  # the bytes are not a record of the topic's schema (or the record has no usable envelope)
VALIDATION = "validation"  # a field's value is refused (user JSON too large or deep, a value the logic rejects)
TOO_LARGE = "output_too_large"  # an output derived from the record would exceed its topic's size limit
REFUSED = "refused_by_database"  # the replica table refused the value (SQLSTATE class 22 or 23)
PROCESSING = "processing"  # anything else the record's handling raised (a bug shows here too)
REASONS = (DECODE, VALIDATION, TOO_LARGE, REFUSED, PROCESSING)


def is_infrastructure(exc: BaseException) -> bool:
    """True for the faults that stop the process; every other exception is the record's."""
    return isinstance(exc, INFRASTRUCTURE) and not isinstance(exc, MessageSizeTooLargeError)


def reason_of(exc: BaseException) -> str:
    """The DLQ reason of a record's own failure."""
    if isinstance(exc, RecordTooLarge | MessageSizeTooLargeError):
        return TOO_LARGE
    if isinstance(exc, RefusedWrite):
        return REFUSED
    if isinstance(exc, JsonLimitExceeded | InvalidInput):
        return VALIDATION
    return PROCESSING
