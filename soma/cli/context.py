"""What every command needs: the settings (loaded once, errors as one line), a console, JSON input."""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from soma.settings import Settings, load_settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@cache
def settings() -> Settings:
    return load_settings()


def parse_json_lines(value_json: str | None, file: Path | None) -> list[dict[str, Any]]:
    """The JSON objects of --value-json (one) or of --file (one per non-blank line; '-' is stdin)."""
    from soma.errors import EventValidationError

    if (value_json is None) == (file is None):
        raise typer.BadParameter("give exactly one of --value-json or --file")
    if file is not None:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        sources = [(f"{file}:{n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    else:
        sources = [("--value-json", value_json or "")]
    values = []
    for where, text in sources:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EventValidationError(f"{where}: not JSON: {exc.msg} at column {exc.colno}") from exc
        if not isinstance(value, dict):
            raise EventValidationError(f"{where}: expected a JSON object, got {type(value).__name__}")
        values.append(value)
    return values
