"""The profile's pure part: py-spy raw stacks parsed, each sample put in the bucket of its innermost deciding frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.profile_buckets import (
    AVRO,
    BUCKETS,
    FAUST,
    IDLE,
    KAFKA,
    LOOP,
    OBSERVE,
    OTHER,
    OURS,
    POSTGRES,
    REDIS,
    bucket_samples,
    classify,
    hop_row,
    markdown,
    parse_frame,
    parse_raw,
    top_frames,
    top_markdown,
)

LOOP_ROOT = ["<module> (faust:8)", "run_forever (asyncio/base_events.py:608)",
             "_run_once (asyncio/base_events.py:1922)", "_run (asyncio/events.py:80)"]


def test_frames_are_split_into_function_and_file() -> None:
    assert parse_frame("take_events (faust/streams.py:123)") == ("take_events", "faust/streams.py")
    assert parse_frame("<lambda> (streams/worker.py:9)") == ("<lambda>", "streams/worker.py")
    assert parse_frame("weird frame") == ("weird frame", "")


@pytest.mark.parametrize(("leaf", "bucket"), [
    (["take_events (faust/streams.py:700)"], FAUST),
    (["take_events (faust/streams.py:700)", "wait_for (asyncio/tasks.py:466)"], FAUST),  # stdlib does not decide
    (["on_batch (streams/worker.py:80)", "schemaless_reader (fastavro/_read_py.py:1)"], AVRO),
    (["on_batch (streams/worker.py:80)", "decode (soma/contracts/codec.py:50)"], AVRO),
    (["fetch (aiokafka/consumer/fetcher.py:1)", "debug (logging/__init__.py:1)"], OBSERVE),
    (["on_batch (streams/worker.py:80)", "inc (prometheus_client/metrics.py:1)"], OBSERVE),
    (["on_batch (streams/worker.py:80)", "record (streams/runtime/metrics.py:1)"], OBSERVE),
    (["span (soma/observability/tracing.py:1)", "dumps (json/__init__.py:1)"], OBSERVE),
    (["send (aiokafka/producer/producer.py:1)", "send (socket.py:1)"], KAFKA),
    (["upsert (streams/storage/replica.py:1)", "execute (sqlalchemy/engine/base.py:1)",
      "execute (psycopg/cursor.py:1)"], POSTGRES),
    (["get (redis/asyncio/client.py:1)"], REDIS),
    (["on_batch (streams/worker.py:80)", "dumps (json/__init__.py:1)"], OURS),
    (["relay_once (outbox/relay.py:1)"], OURS),
    (["select (selectors.py:468)"], IDLE),
    (["on_batch (streams/worker.py:80)", "sleep (asyncio/tasks.py:600)"], IDLE),
    (["_run (mode/timers.py:50)"], IDLE),
    ([], LOOP),
])
def test_a_sample_goes_to_its_innermost_deciding_frame(leaf: list[str], bucket: str) -> None:
    assert classify(LOOP_ROOT[1:] + leaf) == bucket


def test_what_runs_the_loop_is_not_what_a_callback_did() -> None:
    runner = ["execute_from_commandline (mode/worker.py:264)", *LOOP_ROOT[1:]]
    assert classify([*runner, "_read_ready (asyncio/selector_events.py:1)"]) == LOOP
    assert classify([*runner, "_on_done (faust/streams.py:1)"]) == FAUST
    assert classify([*runner, "take_events (faust/streams.py:700)", "wait_for_stopped (mode/services.py:1)",
                     "wait_first (mode/services.py:2)", "wait (asyncio/tasks.py:3)"]) == IDLE
    assert classify(["execute_from_commandline (mode/worker.py:264)", "run_until_complete (asyncio/x.py:1)"]) == (
        FAUST)  # start-up, outside any callback: the runner's own


def test_stacks_without_a_deciding_frame() -> None:
    assert classify([]) == OTHER
    assert classify(["_bootstrap (threading.py:1)", "run (threading.py:2)", "dumps (json/__init__.py:1)"]) == OTHER
    assert classify(["_run_once (asyncio/base_events.py:1)"]) == LOOP


def test_full_filenames_are_cut_to_the_module_path() -> None:
    assert classify(["x (/work/.venv/lib/python3.11/site-packages/faust/streams.py:1)"]) == FAUST
    assert classify(["x (/work/wt/tp-bench/streams/worker.py:1)"]) == OURS
    assert classify(["x (/usr/lib/python3.11/selectors.py:1)"]) == IDLE


def test_raw_lines_are_summed_per_bucket() -> None:
    raw = [
        "<module> (faust:8);take_events (faust/streams.py:700) 30",
        "<module> (faust:8);on_batch (streams/worker.py:80) 50\n",
        "process 1234:\"faust\";thread (0x7f);on_batch (streams/worker.py:80);inc (prometheus_client/m.py:1) 20",
        "garbage without a count",
        "",
    ]
    assert [count for _, count in parse_raw(raw)] == [30, 50, 20]
    assert list(parse_raw(raw))[2][0] == ["on_batch (streams/worker.py:80)", "inc (prometheus_client/m.py:1)"]
    assert bucket_samples(raw) == {FAUST: 30, OURS: 50, OBSERVE: 20}


def test_a_hop_row_and_its_markdown() -> None:
    row = hop_row("stream-worker", 2000, 4.0, {FAUST: 30, OURS: 50, OBSERVE: 20}, 100, idle_cpu_s=1.0)
    assert row["cpu_ms_per_event"] == 2.0
    assert row["cpu_ms_per_event_above_idle"] == 1.5  # (4.0 - 1.0) s / 2,000
    assert row["samples"] == 100
    assert row["gil_s"] == 1.0
    assert set(row["share_percent"]) == set(BUCKETS)
    assert row["share_percent"][OURS] == 50.0
    idle = hop_row("admin", None, 0.1, {}, 100)
    assert idle["cpu_ms_per_event"] is None
    assert (idle["idle_cpu_s"], idle["cpu_ms_per_event_above_idle"]) == (None, None)
    assert hop_row("x", 10, 1.0, {}, 100, idle_cpu_s=2.0)["cpu_ms_per_event_above_idle"] == 0.0  # noise: not < 0
    assert all(v == 0.0 for v in idle["share_percent"].values())
    table = markdown([row, idle]).splitlines()
    assert table[0] == ("| process | events | CPU s | idle CPU s | CPU ms/event | above idle ms/event | "
                        f"GIL held s (sampled) | {FAUST} | {OBSERVE} | {OURS} |")
    assert table[2] == "| stream-worker | 2,000 | 4.0 | 1.0 | 2.00 | 1.50 | 1.0 | 30 % | 20 % | 50 % |"
    assert table[3] == "| admin | - | 0.1 | - | - | - | 0.0 | 0 % | 0 % | 0 % |"


def test_why_py_spy_stopped_names_the_panic_and_a_spent_window_starts_nothing(tmp_path: Path) -> None:
    import time

    from bench.spy import Spy, _why

    err = b"py-spy> Sampling process\nthread 'main' panicked at src/python_spy.rs:9: bad read\nnote: Some details\n"
    assert _why(err) == "thread 'main' panicked at src/python_spy.rs:9: bad read"
    assert _why(b"note: only this\n") == "note: only this"
    assert _why(b"") == "no message"
    spy = Spy("relay", 1, tmp_path, until=time.monotonic() + 1)  # less than a run is worth
    spy.start()
    spy.join(timeout_s=5)
    assert (spy.files, spy.errors, spy.lines()) == ([], [], [])


def test_the_busiest_deciding_frames() -> None:
    raw = [
        "<module> (faust:8);take_events (faust/streams.py:700) 30",
        "<module> (faust:8);take_events (faust/streams.py:712) 10",  # another line of the same function
        "<module> (faust:8);on_batch (streams/worker.py:80);dumps (json/__init__.py:1) 50",
        "<module> (faust:8);select (selectors.py:468) 10",
    ]
    top = top_frames(raw, n=2)
    assert top == [{"bucket": OURS, "frame": "on_batch (streams/worker.py)", "share_percent": 50.0},
                   {"bucket": FAUST, "frame": "take_events (faust/streams.py)", "share_percent": 40.0}]
    assert top_markdown({"stream-worker": top, "admin": []}) == (
        f"- stream-worker: 50 % `on_batch (streams/worker.py)` ({OURS}); "
        f"40 % `take_events (faust/streams.py)` ({FAUST})\n")


def test_the_profile_is_bounded_and_local() -> None:
    from bench.load import LoadRefused
    from bench.profile_run import MAX_PROFILE_S, check_profile
    from soma.settings import Settings

    with pytest.raises(LoadRefused, match=r"^bench profile: --duration must be in \(0, 120\] seconds, got 500$"):
        check_profile(Settings.construct_flat(), 100, 500)
    assert MAX_PROFILE_S == 120
    with pytest.raises(LoadRefused, match="not a loopback address"):
        check_profile(Settings.construct_flat(kafka_bootstrap="10.1.2.3:9092"), 100, 30)
