"""The pure parts of the admin side of sleep: the request body, the state answer, the policy errors,
the token buckets and the live settings' cache (no broker, database or Redis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from outbox.admin.live import LiveView
from outbox.admin.ratelimit import TokenBuckets
from outbox.admin.sleep import SleepModeIn, policy_error, state_view
from outbox.admin.sleep_api import _inline
from outbox.errors import InvalidFilter
from soma.live_config import checksum
from soma.settings import Settings
from soma.sleep.policy import SleepPolicy

NOW = datetime(2026, 12, 2, 15, 0, 0, 123456, tzinfo=UTC)


def test_for_becomes_an_absolute_until_at_millisecond_precision() -> None:
    change = SleepModeIn.model_validate({"state": "deep", "for": "1h30m"})
    assert change.resolve_until(NOW) == datetime(2026, 12, 2, 16, 30, 0, 123000, tzinfo=UTC)
    assert SleepModeIn.model_validate({"state": "light"}).resolve_until(NOW) is None


def test_until_without_a_zone_is_utc_and_must_be_within_30_days() -> None:
    naive = SleepModeIn.model_validate({"state": "deep", "until": "2026-12-03T00:00:00"})
    assert naive.resolve_until(NOW) == datetime(2026, 12, 3, tzinfo=UTC)
    for until, reason in (("2026-12-01T00:00:00Z", "not in the future"), ("2027-02-01T00:00:00Z", "at most 30 days")):
        with pytest.raises(InvalidFilter, match=reason) as caught:
            SleepModeIn.model_validate({"state": "deep", "until": until}).resolve_until(NOW)
        assert caught.value.field == "until"


@pytest.mark.parametrize(("body", "field"), [
    ({"state": "nap"}, "state"),
    ({"state": "deep", "for": "later"}, "for"),
    ({"state": "deep", "for": "off"}, "for"),
    ({"state": "deep", "for": "31d"}, "for"),
    ({"state": "deep", "wait_s": float("nan")}, "wait_s"),
    ({"state": "deep", "wait_s": 3601}, "wait_s"),
    ({"state": "deep", "for_": "1m"}, "for_"),
])
def test_a_bad_request_names_its_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SleepModeIn.model_validate(body)
    assert caught.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("body", [
    {"state": "awake", "for": "5m"},
    {"state": "deep", "for": "5m", "until": "2026-12-03T00:00:00Z"},
])
def test_awake_has_no_limit_and_for_and_until_exclude_each_other(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="`for`"):
        SleepModeIn.model_validate(body)


def test_the_state_answer_is_awake_at_seq_0_until_the_integrator_caches_a_transition() -> None:
    empty = state_view("acme", None)
    assert (empty["tenant"], empty["state"], empty["seq"], empty["recorded"], empty["until"]) == (
        "acme", "awake", 0, False, None)
    cached = json.dumps({"event_id": "e", "tenant_id": "acme", "occurred_at": "2026-12-02T15:00:00Z", "seq": 3,
                         "from_state": "awake", "to_state": "deep", "reason": "manual", "until": None,
                         "params": {"eta": 0.0}, "policy_version": 2, "requested_by": "ops", "request_id": "r"})
    view = state_view("acme", cached.encode())
    assert (view["state"], view["seq"], view["since"], view["policy_version"], view["recorded"]) == (
        "deep", 3, "2026-12-02T15:00:00Z", 2, True)


def test_an_unreadable_cached_state_is_one_line_naming_the_key() -> None:
    from soma.errors import InfrastructureUnavailable

    with pytest.raises(InfrastructureUnavailable, match="redis: sleep:acme holds no readable sleep state"):
        state_view("acme", b"{not json")


def test_policy_errors_name_the_field_even_for_the_policy_wide_rules() -> None:
    from soma.live_config import check_value

    def field_of(text: str) -> str:
        with pytest.raises(ValueError, match="SLEEP_POLICY") as caught:
            check_value("sleep_policy", text)
        return policy_error(str(caught.value))[0]

    assert field_of('{"deep": {"eta": 0.5}}') == "SLEEP_POLICY.deep.eta"  # the monotonic rule
    assert field_of('{"awake": {"temperature": 1}, "freeze": {"temperature": 2}}') == "SLEEP_POLICY.freeze.temperature"
    assert field_of('{"light": {"eta": -1}}') == "SLEEP_POLICY.light.eta"
    assert field_of("[]") == "SLEEP_POLICY"


def test_the_policy_body_schema_has_no_unresolved_references() -> None:
    schema = _inline(SleepPolicy.model_json_schema())
    assert "$ref" not in json.dumps(schema)
    assert schema["properties"]["deep"]["properties"]["eta"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_token_bucket_allows_the_burst_then_the_rate_per_key() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token comes back every 0.5 s
    assert buckets.take("b") == 0.0  # another key has its own bucket
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    clock.now += 100  # refills only up to the burst
    assert [buckets.take("a") for _ in range(4)][-1] > 0


def _update(name: str, value: Any, version: int, tenant: str | None = None) -> dict[str, Any]:
    return {"name": name, "value": value, "scope_tenant": tenant, "version": version, "checksum": checksum(value)}


def test_the_live_view_reads_config_updates_at_most_once_per_ttl() -> None:
    clock, reads = Clock(), []
    updates = [_update("ENABLE_SLEEP", True, 1, "acme"), _update("SLEEP_POLICY", '{"light":{"eta":0.05}}', 1),
               _update("SLEEP_POLICY", '{"light":{"eta":0.02}}', 3, "acme")]

    def read(_: Settings) -> tuple[list[dict[str, Any]], None]:
        reads.append(clock.now)
        return list(updates), None

    view = LiveView(Settings(), ttl_s=5.0, read=read, clock=clock)
    assert view.get("enable_sleep", "acme").value is True
    assert view.get("enable_sleep", "globex").value is False
    acme, globex = view.get("sleep_policy", "acme"), view.get("sleep_policy", "globex")
    assert (acme.value.light.eta, acme.version, acme.scope) == (0.02, 3, "tenant")
    assert (globex.value.light.eta, globex.version, globex.scope) == (0.05, 1, "global")
    assert len(reads) == 1  # within the ttl: one read
    updates.append(_update("ENABLE_SLEEP", None, 2, "acme"))  # a reset: back to the default
    clock.now += 5
    assert view.get("enable_sleep", "acme") == view.get("enable_sleep", "globex")
    assert view.get("enable_sleep", "acme").scope == "default"
    view.invalidate()
    view.get("enable_sleep", "acme")
    assert len(reads) == 3


def test_a_policy_update_older_than_a_later_one_does_not_win() -> None:
    updates = [_update("SLEEP_POLICY", '{"light":{"eta":0.02}}', 2, "acme"),
               _update("SLEEP_POLICY", '{"light":{"eta":0.09}}', 1, "acme")]
    view = LiveView(Settings(), ttl_s=0, read=lambda _: (updates, None))
    assert view.get("sleep_policy", "acme").value.light.eta == 0.02
    assert view.get("sleep_policy", "acme").version == 2
