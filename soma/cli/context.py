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


# A line may be larger than a record: the topic's own limit is checked (and named) when it is encoded.
CLI_JSON_MAX_BYTES = 64_000_000


@cache
def settings() -> Settings:
    return load_settings()


def parse_json_lines(value_json: str | None, file: Path | None) -> list[dict[str, Any]]:
    """The JSON objects of --value-json (one) or of --file (one per non-blank line; '-' is stdin)."""
    from soma.contracts.bounded_json import loads_bounded
    from soma.errors import EventValidationError

    if (value_json is None) == (file is None):
        raise typer.BadParameter("give exactly one of --value-json or --file")
    if file is not None:
        try:
            text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise EventValidationError(f"{file}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
        except OSError as exc:
            raise EventValidationError(f"{file}: cannot read: {exc.strerror or exc}") from exc
        sources = [(f"{file}:{n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    else:
        sources = [("--value-json", value_json or "")]
    values = []
    for where, text in sources:
        try:  # bounded: a line nested 50,000 deep is an error, not a RecursionError
            value = loads_bounded(text, where, max_bytes=CLI_JSON_MAX_BYTES)
        except json.JSONDecodeError as exc:
            raise EventValidationError(f"{where}: not JSON: {exc.msg} at column {exc.colno}") from exc
        except ValueError as exc:  # e.g. an integer of more digits than Python converts
            raise EventValidationError(f"{where}: not usable JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise EventValidationError(f"{where}: expected a JSON object, got {type(value).__name__}")
        values.append(value)
    return values
