"""Cognitive sleep per tenant: states, policy, effective parameters (see docs/sleep.md)."""

from soma.sleep.policy import (
    ASLEEP,
    REASONS,
    STATES,
    Effective,
    SleepPolicy,
    SleepWindow,
    StateParams,
    depth,
    effective,
    redis_key,
)

__all__ = ["ASLEEP", "REASONS", "STATES", "Effective", "SleepPolicy", "SleepWindow", "StateParams", "depth",
           "effective", "redis_key"]
