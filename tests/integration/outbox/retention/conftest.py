"""Retention's tests run in a schema of their own (a prune acts on the whole table), emptied before each test."""

from tests.support.outbox_relay import empty_outbox, outbox_db

__all__ = ["empty_outbox", "outbox_db"]  # fixtures, for pytest
