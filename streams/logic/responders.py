"""The pluggable responder: what produces assistant messages (the platform ships no LLM).

A responder is any object with `respond(session, message) -> Reply | None`, named by
`SOMA_WORKER_RESPONDER` as ``module:attribute`` (a class is instantiated without arguments).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol

from streams.errors import ResponderError
from streams.logic.session import Reply, SessionState


class Responder(Protocol):
    def respond(self, session: SessionState, message: Mapping[str, Any]) -> Reply | None: ...


class NullResponder:
    """The default: never replies."""

    def respond(self, session: SessionState, message: Mapping[str, Any]) -> Reply | None:
        return None


class EchoResponder:
    """A deterministic responder for tests and demos: echoes the message it answers."""

    def respond(self, session: SessionState, message: Mapping[str, Any]) -> Reply | None:
        return Reply(f"echo: {message['content']}")


def load_responder(spec: str) -> Responder:
    if not spec.strip():
        return NullResponder()
    module, _, attr = spec.strip().partition(":")
    try:
        target = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ResponderError(f"responder {spec!r} cannot be loaded: {exc}") from exc
    responder = target() if isinstance(target, type) else target
    if not callable(getattr(responder, "respond", None)):
        raise ResponderError(f"responder {spec!r} has no respond(session, message) method")
    return responder  # type: ignore[no-any-return]
