"""`soma outbox`: emit and relay (soma/cli/outbox.py) plus list, stats and replay (soma/cli/outbox_admin.py).

Transitional: once the outbox layer's own `outbox.cli:app` carries all five commands, the
table in soma/cli/__init__.py names it and this module goes.
"""

from __future__ import annotations

from soma.cli import outbox_admin
from soma.cli.outbox import app

app.command("list")(outbox_admin.list_events)
app.command("stats")(outbox_admin.stats)
app.command("replay")(outbox_admin.replay)

__all__ = ["app"]
