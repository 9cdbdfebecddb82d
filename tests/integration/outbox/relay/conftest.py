"""The relay's tests each run in a schema of their own (see `own_db`), emptied before each test."""

from tests.support.outbox_relay import empty_outbox, outbox_db

__all__ = ["empty_outbox", "outbox_db"]  # fixtures, for pytest
