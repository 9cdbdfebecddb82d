"""Admin tokens and scopes: who may inspect and replay which tenant's outbox rows.

`SOMA_ADMIN_TOKENS` holds the bearer tokens, each with its scopes: ``admin`` (every tenant)
or ``tenant:<id>`` (one tenant; several may be given, space-separated). Two spellings:

    {"<token>": "admin", "<token>": "tenant:acme", "<token>": {"scope": "tenant:a tenant:b", "name": "ops-ab"}}
    <token>=admin,<token>=tenant:acme

Only SHA-256 digests of the tokens are kept once parsed; a presented token is hashed and
compared in constant time with every configured digest. Audit records name the caller by
the configured ``name`` or ``token-<first 8 hex digits of sha256(token)>``, never the token.
Configuration errors name the setting and the entry number, never a token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from outbox.errors import AccessDenied, InvalidFilter, RowsNotFound
from soma.errors import SettingsError
from soma.settings import Settings, env_name

ADMIN_SCOPE = "admin"
TENANT_SCOPE_PREFIX = "tenant:"
MIN_TOKEN_LENGTH = 16
_NAME = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: what an HTTP bearer credential can carry
FORBIDDEN = "forbidden: the token's scope does not cover this request"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its audit name and the tenants it may act on."""

    actor: str
    all_tenants: bool = False
    tenants: frozenset[str] = field(default_factory=frozenset)

    def can_access(self, tenant: str) -> bool:
        return self.all_tenants or tenant in self.tenants

    def require(self, tenant: str) -> None:
        """Raise `AccessDenied` (naming nothing of the tenant's data) unless `tenant` is in scope."""
        if not self.can_access(tenant):
            raise AccessDenied(FORBIDDEN)


def fingerprint(token: str) -> str:
    """The name of an unnamed token in logs and audit records: not the token, not reversible."""
    return f"token-{hashlib.sha256(token.encode()).hexdigest()[:8]}"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_scopes(text: str) -> tuple[bool, frozenset[str]]:
    """``admin`` and/or ``tenant:<id>`` words -> (all tenants?, tenants). Raises ValueError."""
    words = text.split()
    if not words:
        raise ValueError("empty scope (expected admin or tenant:<id>)")
    all_tenants, tenants = False, set()
    for word in words:
        if word == ADMIN_SCOPE:
            all_tenants = True
        elif word.startswith(TENANT_SCOPE_PREFIX) and len(word) > len(TENANT_SCOPE_PREFIX):
            tenants.add(word.removeprefix(TENANT_SCOPE_PREFIX))
        else:
            raise ValueError(f"unknown scope {word[:40]!r} (expected admin or tenant:<id>)")
    return all_tenants, frozenset(tenants)


def _entries(raw: str) -> list[tuple[str, object]]:
    """(token, scope spec) pairs from either spelling; raises ValueError without echoing tokens."""
    text = raw.strip()
    if text.startswith(("{", "[")):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON object: {exc.msg} at column {exc.colno}") from None
        if not isinstance(loaded, dict):
            raise ValueError("expected a JSON object of token -> scope")
        return list(loaded.items())
    pairs: list[tuple[str, object]] = []
    for number, item in enumerate(text.split(","), 1):
        token, sep, scope = item.strip().partition("=")
        if not sep:
            raise ValueError(f"entry {number}: expected token=scope")
        pairs.append((token.strip(), scope.strip()))
    return pairs


class TokenRegistry:
    """The configured tokens (as digests) and the principal each one authenticates."""

    def __init__(self, entries: Iterable[tuple[bytes, Principal]]) -> None:
        self._entries = list(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def parse(cls, raw: str) -> TokenRegistry:
        """Parse a `SOMA_ADMIN_TOKENS` value; raises ValueError naming the entry, never its token."""
        entries: list[tuple[bytes, Principal]] = []
        seen_digests: set[bytes] = set()
        seen_names: set[str] = set()
        for number, (token, spec) in enumerate(_entries(raw), 1):
            if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH or not _TOKEN.match(token):
                raise ValueError(
                    f"entry {number}: a token must be at least {MIN_TOKEN_LENGTH} visible ASCII characters"
                )
            name: object = None
            if isinstance(spec, Mapping):
                name, spec = spec.get("name"), spec.get("scope")
            if not isinstance(spec, str):
                raise ValueError(f"entry {number}: the scope must be a string (admin or tenant:<id>)")
            if name is not None and (not isinstance(name, str) or not _NAME.match(name)):
                raise ValueError(f"entry {number}: a name is 1-100 characters of letters, digits and ._:@-")
            try:
                all_tenants, tenants = parse_scopes(spec)
            except ValueError as exc:
                raise ValueError(f"entry {number}: {exc}") from None
            digest = _digest(token)
            actor = name if isinstance(name, str) else fingerprint(token)
            if digest in seen_digests or actor in seen_names:
                raise ValueError(f"entry {number}: the same token or name is configured twice")
            seen_digests.add(digest)
            seen_names.add(actor)
            entries.append((digest, Principal(actor, all_tenants, tenants)))
        if not entries:
            raise ValueError("no tokens configured")
        return cls(entries)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenRegistry:
        """The registry of `settings`; a missing or malformed value is a one-line `SettingsError`."""
        variable = env_name("admin_tokens")
        if settings.admin_tokens is None or not settings.admin_tokens.get_secret_value().strip():
            raise SettingsError(f"{variable} is not set: the admin API has no anonymous access")
        try:
            return cls.parse(settings.admin_tokens.get_secret_value())
        except ValueError as exc:
            raise SettingsError(f"invalid setting {variable}: {exc}") from None

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal of `token`, or None. Every configured digest is compared, in constant time."""
        if not token:
            return None
        presented = _digest(token)
        found: Principal | None = None
        for digest, principal in self._entries:
            if hmac.compare_digest(presented, digest):
                found = principal
        return found


def token_covering(raw: str, tenant: str) -> str | None:
    """The first configured token whose scopes cover `tenant` (for a client such as `soma demo`), or None."""
    try:
        pairs = _entries(raw)
    except ValueError:
        return None
    for token, spec in pairs:
        scope = spec.get("scope") if isinstance(spec, Mapping) else spec
        if not isinstance(token, str) or not isinstance(scope, str):
            continue
        try:
            all_tenants, tenants = parse_scopes(scope)
        except ValueError:
            continue
        if all_tenants or tenant in tenants:
            return token
    return None


def authorize_ids(
    principal: Principal, requested: Iterable[int], found: Mapping[int, str], tenant: str | None
) -> str:
    """The one tenant a replay of `requested` ids acts on, or why the request is refused.

    `found` maps each requested id that exists to its row's tenant. A caller without the
    all-tenants scope gets the same `AccessDenied` for another tenant's id and for an id
    that does not exist, so it cannot probe other tenants' rows; nothing names the rows.
    """
    if tenant is not None:
        principal.require(tenant)
    wanted = list(dict.fromkeys(requested))
    missing = [i for i in wanted if i not in found]
    if not principal.all_tenants and (missing or any(not principal.can_access(t) for t in found.values())):
        raise AccessDenied(FORBIDDEN)
    if missing:
        shown = ", ".join(str(i) for i in missing[:10])
        raise RowsNotFound(f"ids: {len(missing)} unknown id(s): {shown}{' ...' if len(missing) > 10 else ''}")
    tenants = set(found.values())
    if tenant is not None and tenants - {tenant}:
        raise InvalidFilter("ids", f"{sum(t != tenant for t in found.values())} id(s) belong to another tenant")
    if len(tenants) > 1:
        raise InvalidFilter("ids", f"the ids span {len(tenants)} tenants; replay one tenant at a time")
    if tenant is None and not tenants:
        raise InvalidFilter("ids", "no ids given")
    return tenant if tenant is not None else next(iter(tenants))
