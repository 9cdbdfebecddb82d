"""Soma Event Platform core: settings, clients, health, the local stack and the CLI.

Imports only downward: `outbox` and `streams` may import `soma`, never the reverse
(the CLI wires them together lazily, inside commands).

For services: `from soma import consume, consume_async, open_dedupe` (loaded on first use, so
`import soma` stays light for the CLI); emitting is `from outbox import emit`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from soma.consumer import consume
    from soma.consumer_async import consume_async
    from soma.dedupe import open_dedupe

__version__ = "0.1.0"
__all__ = ["consume", "consume_async", "open_dedupe"]
_EXPORTS = {"consume": "soma.consumer", "consume_async": "soma.consumer_async", "open_dedupe": "soma.dedupe"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'soma' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
