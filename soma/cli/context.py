"""What every command needs: the settings (loaded once, errors as one line) and a console."""

from __future__ import annotations

from functools import cache

from rich.console import Console

from soma.settings import Settings, load_settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@cache
def settings() -> Settings:
    return load_settings()
