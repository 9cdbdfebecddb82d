"""The Faust worker class of every stream: logging stays exactly as `soma.observability.logs` configures it.

Faust's worker draws a terminal spinner on stdout (cursor escape codes even when stdout is a
file) and, while the spinner is on, sets the first root handler's level to the CLI's ``-l``
(default WARN), which would silence INFO lines. Without the spinner, the process logs only
through the handler of `soma.observability.logs.logging_dict_config`, at ``SOMA_LOG_LEVEL``. (The banner
is printed by faust's CLI before the worker exists: run ``faust -A streams.<name> --quiet worker``
for a stdout of JSON lines only.)
"""

from __future__ import annotations

from typing import Any

import faust


class StreamWorker(faust.Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None
