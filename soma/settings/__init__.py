"""The one typed, frozen settings object, in sections, and the client configurations derived from it.

Every setting is read from the environment or a ``.env`` file in the working directory;
nothing else in the project reads the environment. `Settings` holds one section per concern
(``settings.kafka.bootstrap``, ``settings.relay.batch_size``, ``settings.streams.live.integrator_alpha``);
each section reads its own ``SOMA_*`` variables, whose names are those of the flat settings
of before. Tools and tests name a setting by its flat name (the variable without ``SOMA_``,
lower case): ``load_settings(topic_prefix="t.")``, ``settings.replace(admin_port=9000)``.
Secrets are `SecretStr`, so `repr()`, logs and ``soma settings`` show them masked.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from sqlalchemy.engine import URL, make_url

from soma.errors import SettingsError
from soma.settings.components import (
    AdminSettings,
    LiveSettings,
    RelaySettings,
    StreamsSettings,
    SupervisorSettings,
    TelemetrySettings,
)
from soma.settings.sections import (
    CatalogSettings,
    DatabaseSettings,
    KafkaSettings,
    RedisSettings,
    Section,
    StackSettings,
)
from soma.settings.values import ENV_PREFIX, env_name, env_text, parse_tenant_map

__all__ = [
    "ENV_PREFIX", "AdminSettings", "CatalogSettings", "DatabaseSettings", "KafkaSettings", "LiveSettings",
    "RedisSettings", "RelaySettings", "Section", "Settings", "StackSettings", "StreamsSettings", "SupervisorSettings",
    "TelemetrySettings", "env_name", "live_fields", "load_settings", "mask_url", "parse_tenant_map",
]

# Flat names shown without their password by `safe_view`.
_URLS = frozenset({"database_url", "redis_url", "schema_registry_url"})


def mask_url(url: str) -> str:
    """`url` with any password replaced by ``***`` (safe to print or log)."""
    try:
        parsed = make_url(url)
    except Exception:  # not an RFC-1738 URL: show nothing of it rather than a secret
        return "***"
    return parsed.render_as_string(hide_password=True)


def _variable(section: type[Section], field: str) -> str:
    """The environment variable of a section's field: its own name, else the section prefix + field."""
    alias = section.model_fields[field].validation_alias
    if isinstance(alias, str):
        return alias.upper()
    return f"{section.model_config.get('env_prefix', '')}{field}".upper()


def _subsection(info: FieldInfo) -> type[Section] | None:
    kind = info.annotation
    return kind if isinstance(kind, type) and issubclass(kind, Section) else None


def _walk(section: type[Section], path: tuple[str, ...]) -> Iterator[tuple[str, tuple[str, ...], FieldInfo]]:
    for field, info in section.model_fields.items():
        sub = _subsection(info)
        if sub is not None:
            yield from _walk(sub, (*path, field))
        else:
            yield _variable(section, field).removeprefix(ENV_PREFIX).lower(), (*path, field), info


def _error(section: type[Section], exc: ValidationError) -> SettingsError:
    """A one-line error naming the variable of the first invalid field (never echoing its value)."""
    first = exc.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if not first["loc"]:  # a check across fields (a model validator): its message starts with the variable
        return SettingsError(f"invalid setting {message}")
    where = str(first["loc"][0])
    variable = _variable(section, where) if where in section.model_fields else where.upper()
    return SettingsError(f"invalid setting {variable}: {message}")


def _init_key(name: str, info: FieldInfo) -> str:
    return info.validation_alias if isinstance(info.validation_alias, str) else name


def _load(section: type[Section], values: Mapping[str, Any], init: Mapping[str, Any]) -> Section:
    """`section` read from the environment, with `values` (nested per sub-section) taking precedence."""
    given: dict[str, Any] = {
        # By alias: an aliased field given by name would lose to its variable in the environment.
        _init_key(name, info): _load(sub, values.get(name, {}), init) if (sub := _subsection(info)) else values[name]
        for name, info in section.model_fields.items() if name in values or _subsection(info)
    }
    try:
        return section(**init, **given)
    except ValidationError as exc:
        # `from None`: pydantic's error echoes the input, which may be a secret (a URL's password).
        raise _error(section, exc) from None


def _revalidate(current: Section, changes: Mapping[str, Any]) -> Section:
    """A validated copy of `current` with `changes` (nested per sub-section); the environment is not read."""
    section = type(current)
    values = {name: getattr(current, name) for name in section.model_fields}
    for name, change in changes.items():
        values[name] = _revalidate(values[name], change) if isinstance(values[name], Section) else change
    try:
        return section.model_validate(values)
    except ValidationError as exc:
        raise _error(section, exc) from None


def _construct(section: type[Section], values: Mapping[str, Any]) -> Section:
    given: dict[str, Any] = {
        name: _construct(sub, values.get(name, {})) if (sub := _subsection(info)) else values[name]
        for name, info in section.model_fields.items() if name in values or _subsection(info)
    }
    return section.model_construct(**given)


def _flat(settings: type[BaseModel]) -> Iterator[tuple[str, tuple[str, ...], FieldInfo]]:
    for name, info in settings.model_fields.items():
        section = _subsection(info)
        if section is not None:  # every field of Settings is a section
            yield from _walk(section, (name,))


# Cached: live settings are looked up by flat name for every record a stream handles.
@functools.cache
def _flat_paths(settings: type[BaseModel]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({flat: path for flat, path, _ in _flat(settings)})


@functools.cache
def _flat_fields(settings: type[BaseModel]) -> Mapping[str, FieldInfo]:
    return MappingProxyType({flat: info for flat, _, info in _flat(settings)})


class Settings(BaseModel):
    """Effective configuration of every Soma process, by section. Defaults point at the local stack."""

    model_config = ConfigDict(frozen=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    streams: StreamsSettings = Field(default_factory=StreamsSettings)
    supervisor: SupervisorSettings = Field(default_factory=SupervisorSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)

    # --- Flat names (the variables without SOMA_) -------------------------------------------
    @classmethod
    def paths(cls) -> Mapping[str, tuple[str, ...]]:
        """Every flat setting name and its attribute path, e.g. ``kafka_bootstrap`` -> (kafka, bootstrap)."""
        return _flat_paths(cls)

    @classmethod
    def flat_fields(cls) -> Mapping[str, FieldInfo]:
        """Every setting's declaration by flat name (its default, constraints, description, marker)."""
        return _flat_fields(cls)

    @classmethod
    def _nest(cls, flat: Mapping[str, Any]) -> dict[str, Any]:
        paths = cls.paths()
        nested: dict[str, Any] = {}
        for name, value in flat.items():
            if name not in paths:
                raise TypeError(f"unknown setting {name!r} ({env_name(name)} is not a Soma setting)")
            *parents, leaf = paths[name]
            node = nested
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
        return nested

    @classmethod
    def load(cls, **flat: Any) -> Settings:
        """Read every section; `flat` values (by flat name) override the environment.

        ``_env_file`` (e.g. None) is passed to every section. A malformed value raises
        `SettingsError` naming its variable.
        """
        init = {"_env_file": flat.pop("_env_file")} if "_env_file" in flat else {}
        nested = cls._nest(flat)
        sections = {name: _load(section, nested.get(name, {}), init)
                    for name, info in cls.model_fields.items() if (section := _subsection(info))}
        return cls.model_validate(sections)

    @classmethod
    def construct_flat(cls, **flat: Any) -> Settings:
        """Declared defaults plus `flat` values, unvalidated and without reading the environment (tests)."""
        nested = cls._nest(flat)
        sections: dict[str, Any] = {name: _construct(section, nested.get(name, {}))
                    for name, info in cls.model_fields.items() if (section := _subsection(info))}
        return cls.model_construct(**sections)

    def replace(self, **flat: Any) -> Settings:
        """A new frozen `Settings` with these settings (by flat name) changed and validated."""
        nested = self._nest(flat)
        sections = {name: _revalidate(getattr(self, name), nested[name]) if name in nested else getattr(self, name)
                    for name in type(self).model_fields}
        return type(self).model_validate(sections)

    def value(self, flat: str) -> Any:
        """The value of a setting by flat name."""
        found: Any = self
        for step in self.paths()[flat]:
            found = getattr(found, step)
        return found

    def flat_items(self) -> Iterator[tuple[str, Any]]:
        """(flat name, value) of every setting, in declaration order."""
        for flat in self.paths():
            yield flat, self.value(flat)

    # --- Derived configuration (shortcuts to the sections' builders) --------------------------
    @property
    def kafka_servers(self) -> list[tuple[str, int]]:
        return self.kafka.servers

    def kafka_config(self) -> dict[str, Any]:
        return self.kafka.config()

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        return self.kafka.producer_config(**overrides)

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        return self.kafka.consumer_config(group_id, **overrides)

    def topic_name(self, logical: str) -> str:
        return self.kafka.topic_name(logical)

    def sqlalchemy_url(self) -> URL:
        return self.database.sqlalchemy_url()

    def sqlalchemy_engine_options(self) -> dict[str, Any]:
        return self.database.engine_options()

    def redis_url_value(self) -> str:
        return self.redis.url_value()

    def schema_registry_url_value(self) -> str | None:
        """The registry the codec uses: SOMA_SCHEMA_REGISTRY_URL, else the local stack's when it runs one."""
        if self.kafka.schema_registry_url is not None:
            return self.kafka.schema_registry_url.get_secret_value()
        if self.stack.registry == "apicurio":
            return self.stack.local_registry_url
        return None

    def safe_view(self) -> dict[str, str]:
        """Every setting as the text to show a person: secrets masked, URLs without passwords."""
        view: dict[str, str] = {}
        for name, value in self.flat_items():
            if name in _URLS and value is not None:
                view[env_name(name)] = mask_url(value.get_secret_value())
            elif isinstance(value, SecretStr):
                view[env_name(name)] = "***"
            else:
                view[env_name(name)] = "" if value is None else env_text(value)
        return view

    def child_env(self, **extra: str) -> dict[str, str]:
        """Environment for a child process: this one's, plus these settings made explicit."""
        env = dict(os.environ)
        for name, value in self.flat_items():
            if value is not None:
                env[env_name(name)] = env_text(value)
        env.update(extra)
        return env


def live_fields() -> frozenset[str]:
    """Flat names of the settings marked live-changeable (``json_schema_extra={"live": True}``)."""
    return frozenset(
        name for name, info in Settings.flat_fields().items()
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("live") is True
    )


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; `overrides` by flat name. A malformed value raises `SettingsError` naming its variable."""
    return Settings.load(**overrides)
