"""`soma bench load`'s process accounting: pids, names, /proc readers, the supervisor's state file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.proc_usage import cpu_seconds, discover, from_state_file, hwm_mib, name_of, parse_pids, rss_mib


def test_parse_pids_and_process_names() -> None:
    assert parse_pids("relay=12, stream-worker=34") == {"relay": 12, "stream-worker": 34}
    with pytest.raises(ValueError, match="expected name=pid"):
        parse_pids("relay:12")
    assert name_of(["/v/bin/faust", "-A", "streams.integrator", "worker", "-l", "info"]) == "stream-integrator"
    assert name_of(["/v/bin/python", "-m", "soma", "outbox", "relay"]) == "relay"
    assert name_of(["/v/bin/soma", "admin", "serve", "--port", "1"]) == "admin"
    assert name_of(["/v/bin/python", "-m", "pytest", "tests/streams.worker"]) is None


def test_proc_readers_see_this_process() -> None:
    pid = os.getpid()
    assert (cpu_seconds(pid) or 0) > 0
    assert (rss_mib(pid) or 0) > 1
    assert (hwm_mib(pid) or 0) >= (rss_mib(pid) or 0) - 1
    assert cpu_seconds(2**22 + 7) is None  # no such process
    assert isinstance(discover("no-such-prefix-" + str(pid)), dict)


def test_pids_come_from_the_supervisor_state_file_when_there_is_one(tmp_path: Path) -> None:
    assert from_state_file(tmp_path) == {}
    (tmp_path / "platform").mkdir()
    state = tmp_path / "platform" / "state.json"
    state.write_text("{not json")
    assert from_state_file(tmp_path) == {}
    state.write_text(json.dumps({"supervisor_pid": 1, "phase": "running", "components": [
        {"name": "relay", "pid": os.getpid()}, {"name": "worker", "pid": None}, {"name": "gone", "pid": 2**22 + 7},
    ]}))
    assert from_state_file(tmp_path) == {"relay": os.getpid()}


def test_processes_found_in_proc_win_over_a_state_file_that_lists_fewer(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.proc_usage as proc_usage

    (tmp_path / "platform").mkdir()
    (tmp_path / "platform" / "state.json").write_text(json.dumps({"components": [
        {"name": "relay", "pid": os.getpid()}]}))
    monkeypatch.setattr(proc_usage, "_prefix_of", lambda pid: None)  # unreadable: kept
    monkeypatch.setattr(proc_usage, "discover", lambda prefix: {"relay": 11, "stream-worker": 12})
    assert proc_usage.platform_pids(tmp_path, "p.") == {"relay": 11, "stream-worker": 12}
    monkeypatch.setattr(proc_usage, "discover", lambda prefix: {"relay": 11})
    assert proc_usage.platform_pids(tmp_path, "p.") == {"relay": os.getpid()}  # the supervisor's names first
    monkeypatch.setattr(proc_usage, "_prefix_of", lambda pid: "other.")  # another platform's state file
    assert proc_usage.platform_pids(tmp_path, "p.") == {"relay": 11}
