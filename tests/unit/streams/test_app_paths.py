"""A stream keeps Faust's data directory under the state dir, never in the working directory."""

from __future__ import annotations

from pathlib import Path


def test_faust_data_directory_is_under_the_state_dir() -> None:
    import streams.worker as worker

    conf = worker.stream.app.conf
    state_dir = worker.stream.settings.stack.state_dir
    assert Path(conf.datadir) == state_dir / "streams" / f"{conf.id}-data"
    assert Path(conf.tabledir).is_relative_to(state_dir / "streams")
