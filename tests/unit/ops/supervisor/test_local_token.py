"""`soma up` on a fresh clone runs the admin API with a generated, private, stable token."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from soma.ops.supervisor.local_token import local_admin_token, token_file, with_local_admin_token
from soma.settings import load_settings


def test_a_token_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    assert with_local_admin_token(settings).admin.tokens is None  # nothing made without `create`
    first = with_local_admin_token(settings, create=True)
    assert first.admin.tokens is not None
    token = local_admin_token(settings)
    assert token is not None
    assert len(token) >= 32
    assert json.loads(first.admin.tokens.get_secret_value()) == {token: {"scope": "admin", "name": "local-platform"}}
    assert stat.S_IMODE(token_file(settings).stat().st_mode) == 0o600
    again = with_local_admin_token(settings, create=True)
    assert again.admin.tokens == first.admin.tokens  # stable across runs: a detached child finds the same one
    assert token not in repr(again)  # a secret in the settings' repr is masked


def test_configured_tokens_win(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path, admin_tokens="mine=admin")
    assert with_local_admin_token(settings, create=True) is settings
    assert local_admin_token(settings) is None
