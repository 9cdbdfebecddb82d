"""Retention's pure parts: durations, cutoffs, the relay's upkeep schedule, and its settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from outbox.relay.upkeep import FIRST_PRUNE_MAX_S, Upkeep, prune_request
from outbox.retention import PruneRequest, PruneResult, cutoffs, horizon
from soma.errors import SettingsError
from soma.settings import load_settings
from soma.settings.values import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 604800.0), ("12h", 43200.0), ("30m", 1800.0), ("90s", 90.0), ("1h30m", 5400.0), ("3600", 3600.0),
     ("0.5", 0.5), (" 2D ", 172800.0), ("1d12h", 129600.0), ("off", None), ("None", None)],
)
def test_durations_parse(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "7", "-5s", "0", "0s", "7w", "1h1h", "h", "1.5.2s", "inf", "nan",
                                  "7d junk", "1e400", "\udcff"])
def test_bad_durations_are_refused_naming_the_format(text: str) -> None:
    if text == "7":
        assert parse_duration(text) == 7.0  # bare seconds are fine
        return
    with pytest.raises(ValueError, match="expected a duration such as 7d"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(604800.0, "7d"), (5400.0, "90m"), (90.0, "90s"), (0.5, "0.5s"),
                                               (None, "off")])
def test_durations_format_exactly(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_retention_settings_default_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.relay.retention == 7 * 86400
    assert settings.relay.dead_retention is None
    monkeypatch.setenv("SOMA_OUTBOX_RETENTION", "2h")
    monkeypatch.setenv("SOMA_OUTBOX_DEAD_RETENTION", "30d")
    assert (load_settings().relay.retention, load_settings().relay.dead_retention) == (7200, 30 * 86400)
    for bad in ("forever", "-1h", "0"):
        monkeypatch.setenv("SOMA_OUTBOX_RETENTION", bad)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        message = str(caught.value)
        assert message.startswith("invalid setting SOMA_OUTBOX_RETENTION: expected a duration such as 7d")
        assert "\n" not in message
    with pytest.raises(SettingsError, match="SOMA_OUTBOX_RETENTION"):
        load_settings(outbox_retention=-3.0)


def test_cutoffs_and_the_horizon_of_the_walk() -> None:
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    sent, dead = cutoffs(now, PruneRequest(3600.0, 86400.0))
    assert (sent, dead) == (now - timedelta(hours=1), now - timedelta(days=1))
    assert horizon(sent, dead) == sent  # rows created after the later cutoff cannot qualify for either
    assert cutoffs(now, PruneRequest(None, None)) == (None, None)
    assert horizon(None, None) is None
    assert horizon(None, dead) == dead


class _Recorder(Upkeep):
    def __init__(self, sent_s: float | None) -> None:
        settings = load_settings(outbox_retention=sent_s, outbox_relay_prune_interval_s=300.0,
                                 outbox_relay_table_metrics_interval_s=60.0).relay
        self.settings, self.request = settings, prune_request(settings)
        self.next_stats, self.next_prune = 0.0, FIRST_PRUNE_MAX_S
        self.calls: list[tuple[str, float]] = []
        self.now = 0.0
        self.complete: list[bool] = []

    def refresh_table_metrics(self) -> None:
        self.calls.append(("stats", self.now))

    def prune_once(self) -> PruneResult:
        self.calls.append(("prune", self.now))
        return PruneResult(complete=self.complete.pop(0) if self.complete else True)


@pytest.mark.parametrize("sent_s", [3600.0, None])
def test_upkeep_runs_each_chore_on_its_coarse_timer(sent_s: float | None) -> None:
    upkeep = _Recorder(sent_s)
    for second in range(0, 700, 5):
        upkeep.now = float(second)
        upkeep.tick(upkeep.now)
    stats = [t for name, t in upkeep.calls if name == "stats"]
    prunes = [t for name, t in upkeep.calls if name == "prune"]
    assert stats == [0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 420.0, 480.0, 540.0, 600.0, 660.0]
    # The first prune soon after start (a relay restarted often still prunes), then every interval;
    # none at all when retention is off.
    assert prunes == ([60.0, 360.0, 660.0] if sent_s else [])


def test_a_prune_that_ran_out_of_budget_goes_on_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    upkeep = _Recorder(3600.0)
    upkeep.complete = [False, False, True]  # behind twice, then caught up
    monkeypatch.setattr("outbox.relay.upkeep.time.monotonic", lambda: upkeep.now)
    for second in range(0, 500, 5):
        upkeep.now = float(second)
        upkeep.tick(upkeep.now)
    # After a run that spent its budget (10 s), the next follows after as long again.
    assert [t for name, t in upkeep.calls if name == "prune"] == [60.0, 70.0, 80.0, 380.0]
