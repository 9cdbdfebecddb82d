"""Responders for stream tests, loaded by a worker child through `SOMA_STREAMS_WORKER_RESPONDER`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from streams.logic.session import Reply, SessionState

SLOW_RESPONDER = "tests.support.responders:SlowResponder"


class SlowResponder:
    """Never replies, but takes 10 ms per message: a worker batch of 200 records is in flight for 2 s."""

    delay_s = 0.01

    def respond(self, session: SessionState, message: Mapping[str, Any]) -> Reply | None:
        time.sleep(self.delay_s)
        return None
