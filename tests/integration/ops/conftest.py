"""The `platform` fixture: settings for a platform of its own that the test starts with `soma up --detach`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from soma.settings import Settings
from tests.support.detached import detached_platform


@pytest.fixture
def platform(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    # A long first restart delay: a killed stream stays visibly down for a moment.
    with detached_platform(settings, tmp_path, "platform", supervisor_backoff_base_s=5.0) as own:
        yield own
