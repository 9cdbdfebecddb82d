"""The sleep policy: validation (monotonic η and τ, η = 0 in deep and freeze), schedules, effective values."""

from __future__ import annotations

import pytest

from soma.live_config import parse_text
from soma.sleep import Effective, SleepPolicy, SleepWindow, depth, effective

LIVE = Effective(eta=0.5, temperature=1.0, dwell_frames=3, drop_threshold=0.3, emits_frames=True)


def test_the_default_policy_learns_slower_light_and_nothing_deep() -> None:
    policy = SleepPolicy()
    assert [effective(policy, s, LIVE).eta for s in ("awake", "light", "deep", "freeze")] == [0.5, 0.1, 0.0, 0.0]
    assert [effective(policy, s, LIVE).emits_frames for s in ("awake", "light", "deep", "freeze")] == [
        True, True, True, False]
    assert effective(policy, "deep", LIVE).temperature == 1.0


def test_values_are_inherited_from_the_shallower_state_and_never_rise_with_depth() -> None:
    policy = SleepPolicy.model_validate({"light": {"eta": 0.2, "temperature": 0.5, "dwell_frames": 9}})
    deep = effective(policy, "deep", LIVE)
    assert (deep.eta, deep.temperature, deep.dwell_frames, deep.drop_threshold) == (0.0, 0.5, 9, 0.3)
    slow_live = Effective(eta=0.05, temperature=0.2, dwell_frames=3, drop_threshold=0.3, emits_frames=True)
    light = effective(policy, "light", slow_live)  # the live awake values are below the policy's: they win
    assert (light.eta, light.temperature) == (0.05, 0.2)


@pytest.mark.parametrize(("text", "message"), [
    ('{"deep": {"eta": 0.3}}', "SLEEP_POLICY: deep.eta must be 0"),
    ('{"awake": {"temperature": 1}, "light": {"temperature": 2}}', "SLEEP_POLICY: light.temperature: 2.0 is above"),
    ('{"light": {"eta": 0.2}, "awake": {"eta": 0.1}}', "SLEEP_POLICY: light.eta: 0.2 is above awake's 0.1"),
    ('{"light": {"eta": 1.5}}', "SLEEP_POLICY.light.eta: Input should be less than or equal to 1"),
    ('{"ligth": {}}', "SLEEP_POLICY.ligth: Extra inputs are not permitted"),
    ('{"schedule": [{"state": "deep", "start": "24:00", "end": "01:00"}]}', "SLEEP_POLICY.schedule[0].start: expected"),
    ('{"schedule": [{"state": "awake", "start": "01:00", "end": "02:00"}]}', "SLEEP_POLICY.schedule[0].state"),
    ('{"schedule": [{"state": "deep", "start": "01:00", "end": "01:00"}]}', "the window is empty"),
    ("[" * 40 + "]" * 40, "SLEEP_POLICY: JSON too deeply nested"),
    ("{", "SLEEP_POLICY: not JSON"),
])
def test_a_bad_policy_is_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="SLEEP_POLICY") as caught:
        parse_text("sleep_policy", text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_schedule_windows_wrap_midnight_and_the_deepest_wins() -> None:
    night = SleepWindow(state="light", start="22:00", end="06:00")
    assert [night.contains(m) for m in (23 * 60, 5 * 60 + 59, 6 * 60)] == [True, True, False]
    policy = SleepPolicy(schedule=[night, SleepWindow(state="deep", start="01:00", end="02:00")])
    assert policy.scheduled_state(90) == "deep"
    assert policy.scheduled_state(23 * 60) == "light"
    assert policy.scheduled_state(12 * 60) is None


def test_depth_names_the_known_states() -> None:
    assert depth("freeze") == 3
    with pytest.raises(ValueError, match="unknown sleep state 'nap' \\(known: awake, light, deep, freeze\\)"):
        depth("nap")
