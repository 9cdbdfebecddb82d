"""Live settings: the pure rules for applying `config_updates` records (no I/O here).

A `ConfigUpdate` names a setting (upper case, without the ``SOMA_`` prefix, e.g.
``INTEGRATOR_TEMPERATURE``), an optional tenant scope, a version and a checksum. An update is
applied only when the setting is live-changeable (a field marked live, in `LiveSettings`), the
value type-checks against its declaration, the version is newer than the one held for that
(scope, name), and the checksum (sha256 hex of the canonical JSON of the value) matches. A null value resets the
setting to its configured default. Every process mirrors the topic into a `LiveConfig`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from soma.contracts.bounded_json import JsonLimitExceeded, loads_bounded
from soma.settings import LiveSettings, live_fields

# Settings that may change while a process runs: the fields marked live in `Settings` (flat names).
LIVE_FIELDS: frozenset[str] = live_fields()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def checksum(value: Any) -> str:
    """sha256 hex digest of the canonical JSON of `value` (the ConfigUpdate schema's rule)."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def field_for(name: str) -> str | None:
    """The `Settings` field behind a live setting name (``INTEGRATOR_ALPHA`` -> ``integrator_alpha``)."""
    field = name.strip().lower().removeprefix("soma_")
    return field if field in LIVE_FIELDS else None


def _adapter(field: str) -> TypeAdapter[Any]:
    info = LiveSettings.model_fields[field]
    annotated: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return TypeAdapter(annotated)


def check_value(field: str, value: Any) -> Any:
    """`value` validated against the field's type and constraints; raises ValueError with the reason."""
    annotation = LiveSettings.model_fields[field].annotation
    if isinstance(value, float) and value.is_integer() and annotation is int:
        value = int(value)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, str):
        try:  # an object setting travels as JSON text (ConfigUpdate values are scalars)
            value = loads_bounded(value, field.upper(), max_depth=8, max_bytes=65_536)
        except JsonLimitExceeded as exc:
            raise ValueError(str(exc)) from None
        except ValueError as exc:
            raise ValueError(f"{field.upper()}: not JSON: {exc}") from None
    try:
        return _adapter(field).validate_python(value, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f".{part}" if isinstance(part, str) else f"[{part}]" for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise ValueError(f"{field.upper()}{where}: {message} (got {shown})") from None


def parse_text(field: str, text: str) -> Any:
    """A command-line text as the field's type (booleans: true/false), validated."""
    annotation = LiveSettings.model_fields[field].annotation
    value: Any = text
    lowered = text.strip().lower()
    if annotation is bool:
        if lowered not in {"true", "false", "1", "0", "on", "off", "yes", "no"}:
            raise ValueError(f"{field.upper()}: expected true or false, got {text!r}")
        value = lowered in {"true", "1", "on", "yes"}
    elif annotation is int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{field.upper()}: expected an integer, got {text!r}") from None
    elif annotation is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{field.upper()}: expected a number, got {text!r}") from None
    return check_value(field, value)


@dataclass(frozen=True)
class Decision:
    accepted: bool
    name: str
    scope: str | None
    reason: str = ""


class LiveConfig:
    """Base settings plus the accepted live overrides, global and per tenant."""

    def __init__(self, settings: LiveSettings) -> None:
        self.settings = settings  # only the live section: the rest cannot change
        self._versions: dict[tuple[str | None, str], int] = {}
        self._values: dict[tuple[str | None, str], Any] = {}

    def apply(self, update: Mapping[str, Any]) -> Decision:
        """Apply one decoded ConfigUpdate if valid; the decision says why not otherwise."""
        name = str(update.get("name", ""))
        scope = update.get("scope_tenant") or None
        field = field_for(name)
        if field is None:
            return Decision(False, name, scope, f"{name!r} is not a live setting")
        value = update.get("value")
        if checksum(value) != update.get("checksum"):
            return Decision(False, name, scope, "checksum does not match the value")
        version = int(update.get("version", 0))
        held = self._versions.get((scope, field), 0)
        if version <= held:
            return Decision(False, name, scope, f"version {version} is not newer than {held}")
        if value is not None:
            try:
                value = check_value(field, value)
            except ValueError as exc:
                return Decision(False, name, scope, str(exc))
        self._versions[(scope, field)] = version
        if value is None:
            self._values.pop((scope, field), None)
        else:
            self._values[(scope, field)] = value
        return Decision(True, name, scope)

    def get(self, field: str, tenant: str | None = None) -> Any:
        """The effective value: the tenant's override, else the global one, else the setting."""
        if tenant is not None and (tenant, field) in self._values:
            return self._values[(tenant, field)]
        if (None, field) in self._values:
            return self._values[(None, field)]
        return getattr(self.settings, field)

    def version(self, field: str, tenant: str | None = None) -> int:
        return self._versions.get((tenant, field), 0)

    def overrides(self) -> dict[tuple[str | None, str], tuple[int, Any]]:
        return {key: (version, self._values.get(key)) for key, version in self._versions.items()}
