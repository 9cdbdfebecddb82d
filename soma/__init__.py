"""Soma Event Platform core: settings, clients, health, the local stack and the CLI.

Imports only downward: `outbox` and `streams` may import `soma`, never the reverse
(the CLI wires them together lazily, inside commands).
"""

__version__ = "0.1.0"
