"""The admin token of a local platform started without `SOMA_ADMIN_TOKENS`.

`soma up` must start everything, the admin API included, on a fresh clone; the admin API
refuses to run without tokens. So when none are configured, `soma up` generates one admin-scoped
token once, keeps it in `STATE_DIR/platform/admin-token` (mode 0600, never printed or logged),
and hands it to the admin API through the settings. `soma demo` and `soma health` find it
there. Configured tokens always win.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from soma.ops.supervisor.state import Paths
from soma.settings import Settings

LOCAL_ACTOR = "local-platform"  # the name audit records show for this token


def token_file(settings: Settings) -> Path:
    return Paths.of(settings).root / "admin-token"


def local_admin_token(settings: Settings) -> str | None:
    """The generated token, if `soma up` made one under this state dir."""
    try:
        return token_file(settings).read_text().strip() or None
    except OSError:
        return None


def _generate(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another `soma up` made it first
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")


def with_local_admin_token(settings: Settings, *, create: bool = False) -> Settings:
    """These settings, with the local admin token when no tokens are configured (made if `create`)."""
    if settings.admin.tokens is not None:
        return settings
    if create and local_admin_token(settings) is None:
        _generate(token_file(settings))
    token = local_admin_token(settings)
    if token is None:
        return settings
    tokens = json.dumps({token: {"scope": "admin", "name": LOCAL_ACTOR}})
    return settings.replace(admin_tokens=SecretStr(tokens))
