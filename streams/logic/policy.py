"""The leader-change policy decision, without I/O: OPA's answer -> outcome -> allowed, and the cache.

`outcome_of(body)` classifies OPA's response body; `decide(outcome, fail_mode)` applies the
tenant's fail mode to every outcome that is not a boolean answer (OPA unreachable, too slow,
or the policy undefined for the input), so an undefined rule no longer vetoes every change.
`DecisionCache` keeps OPA's answers for a short time per decision input (tenant, from, to).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

ALLOW, VETO, UNDEFINED, ERROR, TIMEOUT, CACHED = "allow", "veto", "undefined", "error", "timeout", "cached"
LEADER_CHANGE = "leader_change"  # the metric's action label of these decisions
RESULTS = (ALLOW, VETO, UNDEFINED, ERROR, TIMEOUT, CACHED)  # the metric's result label values
ANSWERED = frozenset({ALLOW, VETO, UNDEFINED})  # what OPA said (cacheable); error/timeout: OPA said nothing
FailMode = Literal["open", "closed"]
DecisionKey = tuple[str, str | None, str]  # tenant, from leader, to leader: everything the decision input varies in


def outcome_of(body: object) -> str:
    """`allow`/`veto` for a boolean ``result``; `undefined` when there is none (rule or package
    missing for this input: OPA answers ``{}``) or it is not a boolean."""
    if not isinstance(body, dict) or "result" not in body:
        return UNDEFINED
    result = body["result"]
    if result is True:
        return ALLOW
    if result is False:
        return VETO
    return UNDEFINED


def decide(outcome: str, fail_mode: str) -> bool:
    """Whether the leader change goes ahead: OPA's boolean answer, else the fail mode (open allows)."""
    if outcome == ALLOW:
        return True
    if outcome == VETO:
        return False
    return fail_mode == "open"


class DecisionCache:
    """OPA's outcomes by decision key, each kept `ttl_s` (given when stored); at most `max_entries`,
    the least recently stored dropped first. The fail mode is applied when read, so a live
    change of the fail mode takes effect at once."""

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries, self._clock = max_entries, clock
        self._entries: OrderedDict[DecisionKey, tuple[float, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: DecisionKey) -> str | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if self._clock() >= found[0]:
            del self._entries[key]
            return None
        return found[1]

    def put(self, key: DecisionKey, outcome: str, ttl_s: float) -> None:
        if ttl_s <= 0 or outcome not in ANSWERED:
            return
        self._entries.pop(key, None)
        self._entries[key] = (self._clock() + ttl_s, outcome)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
