"""The leader-change policy decision without I/O: OPA's body -> outcome, the fail-mode table, the cache."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streams.logic.policy import (
    ALLOW,
    ERROR,
    TIMEOUT,
    UNDEFINED,
    VETO,
    DecisionCache,
    decide,
    outcome_of,
)


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        ({"result": True}, ALLOW),
        ({"result": False}, VETO),
        ({}, UNDEFINED),  # OPA's answer for a rule or package that does not exist
        ({"decision_id": "x"}, UNDEFINED),
        ({"result": None}, UNDEFINED),
        ({"result": "true"}, UNDEFINED),  # not a boolean: never taken as allow
        ({"result": 1}, UNDEFINED),
        ({"result": {"allow": True}}, UNDEFINED),
        ([True], UNDEFINED),
        ("true", UNDEFINED),
        (None, UNDEFINED),
    ],
)
def test_outcome_of_opa_body(body: object, outcome: str) -> None:
    assert outcome_of(body) == outcome


@pytest.mark.parametrize(
    ("outcome", "open_allows", "closed_allows"),
    [
        (ALLOW, True, True),
        (VETO, False, False),
        (UNDEFINED, True, False),  # follows the fail mode (it used to veto even in open)
        (ERROR, True, False),
        (TIMEOUT, True, False),
    ],
)
def test_fail_mode_table(outcome: str, open_allows: bool, closed_allows: bool) -> None:
    assert decide(outcome, "open") is open_allows
    assert decide(outcome, "closed") is closed_allows


def frozen_clock() -> Callable[[], float]:
    """A clock that stands still (a cache's timing is then all in the test's hands)."""
    return lambda: 1000.0


def test_cache_keeps_an_answer_for_its_ttl_then_forgets_it() -> None:
    now = [1000.0]
    cache = DecisionCache(clock=lambda: now[0])
    key = ("acme", "math", "art")
    cache.put(key, VETO, 5.0)
    assert cache.get(key) == VETO
    now[0] += 4.999
    assert cache.get(key) == VETO
    now[0] += 0.001
    assert cache.get(key) is None
    assert len(cache) == 0  # expired entries are dropped when read


def test_cache_key_is_the_whole_decision_input() -> None:
    cache = DecisionCache(clock=frozen_clock())
    cache.put(("acme", "math", "art"), VETO, 5.0)
    for other in [("globex", "math", "art"), ("acme", "art", "math"), ("acme", None, "art"), ("acme", "math", "x")]:
        assert cache.get(other) is None


@pytest.mark.parametrize("outcome", [ERROR, TIMEOUT])
def test_cache_never_keeps_a_failure(outcome: str) -> None:
    cache = DecisionCache(clock=frozen_clock())
    cache.put(("acme", "a", "b"), outcome, 5.0)
    assert cache.get(("acme", "a", "b")) is None


def test_ttl_zero_turns_the_cache_off() -> None:
    cache = DecisionCache(clock=frozen_clock())
    cache.put(("acme", "a", "b"), ALLOW, 0.0)
    assert cache.get(("acme", "a", "b")) is None
    assert len(cache) == 0


def test_cache_is_bounded_oldest_dropped_first() -> None:
    cache = DecisionCache(max_entries=3, clock=frozen_clock())
    for i in range(5):
        cache.put((f"t{i}", "a", "b"), ALLOW, 60.0)
    assert len(cache) == 3
    assert cache.get(("t0", "a", "b")) is None
    assert cache.get(("t1", "a", "b")) is None
    assert cache.get(("t4", "a", "b")) == ALLOW


def test_cache_refuses_a_size_below_one() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        DecisionCache(max_entries=0)
