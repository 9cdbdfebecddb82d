"""Responders for stream tests, loaded by a worker child through `SOMA_STREAMS_WORKER_RESPONDER`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from streams.logic.session import Reply, SessionState

SLOW_RESPONDER = "tests.support.responders:SlowResponder"
PACED_RESPONDER = "tests.support.responders:PacedResponder"


class SlowResponder:
    """Never replies, but takes 10 ms per message: a worker batch of 200 records is in flight for 2 s."""

    delay_s = 0.01

    def respond(self, session: SessionState, message: Mapping[str, Any]) -> Reply | None:
        time.sleep(self.delay_s)
        return None


class PacedResponder(SlowResponder):
    """2 ms per message: 1,000 messages take at least 2 s, so a kill after the first fifth of the
    outputs lands mid-stream even on an idle machine (where the worker could otherwise finish first)."""

    delay_s = 0.002
