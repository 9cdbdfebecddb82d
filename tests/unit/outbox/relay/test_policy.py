"""The relay's pure decisions: circuits, fair shares, poll pacing."""

from __future__ import annotations

from outbox.relay.policy import (
    Circuit,
    Circuits,
    CircuitState,
    FairShare,
    PollPacer,
    TenantActivity,
    held_back,
    in_key_order,
)
from soma.settings import load_settings


# --- circuits ------------------------------------------------------------------------------
def test_circuit_opens_after_consecutive_failures_only() -> None:
    circuit = Circuit(threshold=3, reset_s=10)
    circuit.failure(0)
    circuit.failure(0)
    circuit.success()  # not consecutive any more
    circuit.failure(1)
    circuit.failure(1)
    assert circuit.state is CircuitState.CLOSED
    assert circuit.allowance(1) is None
    circuit.failure(2)
    assert circuit.state is CircuitState.OPEN
    assert circuit.allowance(5) == 0
    assert circuit.reopens_at() == 12


def test_circuit_half_open_probe_then_close() -> None:
    circuit = Circuit(threshold=1, reset_s=10)
    circuit.failure(100)
    assert circuit.allowance(109.9) == 0
    assert circuit.allowance(110) == 1  # half-open: one probe row
    assert circuit.state is CircuitState.HALF_OPEN
    circuit.claimed(1)
    assert circuit.allowance(111) == 0  # the probe is in flight: nothing more
    circuit.success()
    assert circuit.state is CircuitState.CLOSED
    assert circuit.allowance(111) is None


def test_circuit_failed_probe_reopens_for_a_new_interval() -> None:
    circuit = Circuit(threshold=5, reset_s=10)
    for _ in range(5):
        circuit.failure(0)
    assert circuit.allowance(10) == 1
    circuit.claimed(1)
    circuit.failure(12)  # a single failed probe reopens, whatever the threshold
    assert circuit.state is CircuitState.OPEN
    assert circuit.reopens_at() == 22
    assert circuit.allowance(21) == 0


def test_circuit_probe_released_unsent_allows_another() -> None:
    circuit = Circuit(threshold=1, reset_s=1)
    circuit.failure(0)
    assert circuit.allowance(2) == 1
    circuit.claimed(1)
    circuit.released()
    assert circuit.allowance(2) == 1


def test_circuits_per_tenant_thresholds_from_settings() -> None:
    settings = load_settings(
        outbox_relay_circuit_failures=5, outbox_relay_circuit_reset_s=30,
        outbox_relay_circuit_failures_by_tenant="fragile=1", outbox_relay_circuit_reset_s_by_tenant="fragile=0.5",
    )
    circuits = Circuits.from_settings(settings.relay)
    circuits.get("fragile").failure(0)
    circuits.get("sturdy").failure(0)
    assert circuits.limits(0.1) == {"fragile": 0}
    assert circuits.next_change() == 0.5
    assert circuits.limits(0.6) == {"fragile": 1}
    assert circuits.get("sturdy").threshold == 5


# --- fair shares ---------------------------------------------------------------------------
def test_plan_carries_quota_overrides_and_circuit_limits() -> None:
    fair = FairShare(batch_size=1000, quota=100, quotas={"vip": 400})
    plan = fair.plan({"broken": 0, "probing": 1})
    assert plan.after == ""
    assert plan.batch_size == 1000
    assert plan.quota == 100
    assert plan.max_tenants == 10
    overrides = dict(zip(plan.tenants, zip(plan.quotas, plan.limits, strict=True), strict=True))
    assert overrides == {"vip": (400, -1), "broken": (100, 0), "probing": (100, 1)}


def test_cursor_moves_past_the_last_tenant_served_when_the_batch_is_full() -> None:
    fair = FairShare(batch_size=10, quota=5, quotas={})
    fair.claimed("b", rows=10, visited=2, last_visited="b")
    assert fair.plan({}).after == "b"


def test_cursor_moves_past_the_last_tenant_visited_at_the_visit_limit() -> None:
    fair = FairShare(batch_size=10, quota=5, quotas={})  # visits at most 2 tenants per claim
    fair.claimed(None, rows=0, visited=2, last_visited="d")  # e.g. both circuits open
    assert fair.plan({}).after == "d"


def test_cursor_restarts_when_every_tenant_had_its_share() -> None:
    fair = FairShare(batch_size=10, quota=5, quotas={})
    fair.claimed("b", rows=10, visited=2, last_visited="b")
    fair.claimed("a", rows=3, visited=1, last_visited="a")
    assert fair.plan({}).after == ""


# --- poll pacing ---------------------------------------------------------------------------
def test_poll_pacer_doubles_to_the_cap_and_resets_on_rows() -> None:
    pacer = PollPacer(0.002, 0.01)
    assert [pacer.next_wait() for _ in range(5)] == [0.002, 0.004, 0.008, 0.01, 0.01]
    pacer.found_rows()
    assert pacer.next_wait() == 0.002


def test_idle_tenants_are_forgotten_after_the_idle_time_busy_or_open_ones_are_kept() -> None:
    activity = TenantActivity(idle_s=60)
    circuits = Circuits(threshold=1, reset_s=1000)
    activity.seen(["quiet", "waiting", "broken"], now=0)
    circuits.get("quiet")
    circuits.get("broken").failure(now=0)  # open
    assert activity.idle(now=59, busy=[], circuits=circuits) == set()
    # "waiting" still has rows pending (or dead): seen again now, so not idle.
    assert activity.idle(now=60, busy=["waiting"], circuits=circuits) == {"quiet"}
    circuits.forget({"quiet", "broken"})
    assert set(circuits.by_tenant) == {"broken"}  # an open circuit is never forgotten
    assert set(activity.last_seen) == {"waiting", "broken"}
    assert activity.idle(now=200, busy=[], circuits=circuits) == {"waiting"}


def test_a_stream_of_new_tenants_keeps_the_state_bounded_by_the_idle_window() -> None:
    activity = TenantActivity(idle_s=10)
    circuits = Circuits(threshold=5, reset_s=30)
    peak = 0
    for second in range(1000):  # one new tenant a second, each seen once
        tenant = f"t-{second}"
        activity.seen([tenant], now=second)
        circuits.get(tenant).success()
        gone = activity.idle(now=second, busy=[], circuits=circuits)
        circuits.forget(gone)
        peak = max(peak, len(activity.last_seen), len(circuits.by_tenant))
    assert peak <= 11


def test_rows_newer_than_an_unclaimed_unsent_row_of_their_key_are_held_back() -> None:
    from outbox.relay.claim import ClaimedRow

    def row(i: int, key: str, tenant: str = "a") -> ClaimedRow:
        return ClaimedRow(i, tenant, "t", key, {}, b"", 0, 0.0)

    rows = [row(5, "k"), row(7, "k"), row(9, "k"), row(6, "j"), row(8, "k", tenant="b")]
    # Key (a, t, k) has an unsent row 6 the claim does not hold (say it failed a moment ago).
    assert held_back(rows, {("a", "t", "k"): 6}) == {7, 9}
    assert held_back(rows, {}) == frozenset()  # the claim holds every older row of its keys
    assert held_back(rows, {("a", "t", "k"): 2}) == {5, 7, 9}


def test_each_keys_rows_are_put_in_id_order_on_the_places_that_key_holds() -> None:
    from outbox.relay.claim import ClaimedRow

    def row(i: int, key: str, tenant: str = "a") -> ClaimedRow:
        return ClaimedRow(i, tenant, "t", key, {}, b"", 0, 0.0)

    # As due: (a, t, k)'s row 9 came due before its row 5 (overlapping writer transactions).
    rows = [row(9, "k"), row(3, "j"), row(5, "k"), row(8, "k", tenant="b"), row(4, "j"), row(7, "k")]
    assert [(r.tenant_id, r.key, r.id) for r in in_key_order(rows)] == [
        ("a", "k", 5), ("a", "j", 3), ("a", "k", 7), ("b", "k", 8), ("a", "j", 4), ("a", "k", 9)]
    in_order = [row(1, "k"), row(2, "j"), row(3, "k")]
    assert in_key_order(in_order) is in_order  # nothing to move: the same list
    assert in_key_order([]) == []
