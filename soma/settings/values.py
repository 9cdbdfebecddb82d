"""Typed values some settings hold, parsed once from their environment text.

A tenant map (``tenant=number,tenant=number``) becomes a dict, a plug-in list
(``module:function,module:function``) a tuple. Each type also accepts its parsed form, so a
setting can be re-validated from a copy, and `env_text` writes any value back as the text its
variable takes (for child processes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, SecretStr
from pydantic_settings import NoDecode

from soma.errors import SettingsError

ENV_PREFIX = "SOMA_"
_OBJECT_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def env_name(field: str) -> str:
    """The environment variable of a flat setting name, e.g. ``kafka_bootstrap`` -> ``SOMA_KAFKA_BOOTSTRAP``."""
    return f"{ENV_PREFIX}{field.upper()}"


def tenant_pairs(text: str, whole: bool = False) -> dict[str, float]:
    """``tenant=value,tenant=value`` (empty: no overrides) as a dict; raises ValueError naming the bad item."""
    result: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        tenant, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not sep or not tenant.strip() or number < 0 or (whole and not number.is_integer()):
            raise ValueError(f"expected tenant=number{' (whole)' if whole else ''}, got {item!r}")
        result[tenant.strip()] = number
    return result


def parse_tenant_map(text: str, setting: str) -> dict[str, float]:
    """`tenant_pairs` of a flat setting's text; a malformed item is a one-line `SettingsError` naming it."""
    try:
        return tenant_pairs(text)
    except ValueError as exc:
        raise SettingsError(f"invalid setting {env_name(setting)}: {exc}") from None


def _tenant_counts(value: Any) -> Any:
    if isinstance(value, str):
        return {tenant: int(number) for tenant, number in tenant_pairs(value, whole=True).items()}
    return value


def _tenant_seconds(value: Any) -> Any:
    return tenant_pairs(value) if isinstance(value, str) else value


def _object_refs(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    refs = tuple(item.strip() for item in value.split(",") if item.strip())
    for ref in refs:
        if not _OBJECT_REF.match(ref):
            raise ValueError(f"expected module:function[,module:function...], got {ref!r}")
    return refs


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
DURATION_FORMAT = "a duration such as 7d, 12h, 1h30m, 90s or 3600 (seconds), or off"


def parse_duration(text: str) -> float | None:
    """``7d``, ``12h``, ``1h30m``, ``90s`` or bare seconds as seconds; ``off``/``none`` as None (no limit).

    Raises ValueError (naming the expected format) for anything else, zero and negative included.
    """
    value = text.strip().lower()
    if value in {"off", "none"}:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value or len({u for _, u in parts}) != len(parts):
            raise ValueError(f"expected {DURATION_FORMAT}, got {text[:40]!r}") from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"expected {DURATION_FORMAT} (more than 0), got {text[:40]!r}")
    return seconds


def format_duration(seconds: float | None) -> str:
    """The shortest of ``7d``, ``12h``, ``30m``, ``90s`` that is exact (``off`` for None)."""
    if seconds is None:
        return "off"
    for unit, size in _UNITS.items():
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _positive(value: float | None) -> float | None:
    if value is not None and not (0 < value < float("inf")):
        raise ValueError(f"expected {DURATION_FORMAT} (more than 0), got {value!r}")
    return value


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


def _rates(value: dict[str, float]) -> dict[str, float]:
    for tenant, rate in value.items():
        if not 0 <= rate <= MAX_RATE:  # also refuses nan and inf
            raise ValueError(f"expected tenant=rows_per_s with 0 <= rows_per_s <= {MAX_RATE:g}, got {tenant}={rate:g}")
    return value


MAX_RATE = 1_000_000.0

# NoDecode: pydantic-settings would otherwise read these variables as JSON.
TenantCounts = Annotated[dict[str, int], NoDecode, BeforeValidator(_tenant_counts)]
TenantSeconds = Annotated[dict[str, float], NoDecode, BeforeValidator(_tenant_seconds)]
TenantRates = Annotated[dict[str, float], NoDecode, BeforeValidator(_tenant_seconds), AfterValidator(_rates)]
ObjectRefs = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_object_refs)]
# Seconds, or None for "no limit" (``off``); positive when set.
Duration = Annotated[float | None, NoDecode, BeforeValidator(_duration), AfterValidator(_positive)]


def env_text(value: Any) -> str:
    """`value` as the text of its environment variable (secrets revealed: for a child's environment)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):  # an object setting (SLEEP_POLICY) is JSON in the environment
        return value.model_dump_json()
    if isinstance(value, Mapping):
        return ",".join(f"{key}={number}" for key, number in value.items())
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)
