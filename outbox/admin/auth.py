"""Admin tokens and scopes: who may inspect and replay which tenant's outbox rows.

`SOMA_ADMIN_TOKENS` holds the bearer tokens, each with its scopes: ``admin`` (every tenant)
or ``tenant:<id>`` (one tenant; several may be given, space-separated). Two spellings:

    {"<token>": "admin", "<token>": "tenant:acme", "<token>": {"scope": "tenant:a tenant:b", "name": "ops-ab"}}
    <token>=admin,<token>=tenant:acme

The value is parsed (and its errors worded) once, in soma/settings/tokens.py. Only SHA-256
digests of the tokens are kept; a presented token is hashed and compared in constant time with
every configured digest. Audit records name the caller by
the configured ``name`` or ``token-<first 8 hex digits of sha256(token)>``, never the token.
Configuration errors name the setting and the entry number, never a token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from outbox.errors import AccessDenied, InvalidFilter, RowsNotFound
from soma.settings import Settings
from soma.settings.tokens import TokenGrant, parse_tokens

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


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenRegistry:
    """The configured tokens (as digests) and the principal each one authenticates."""

    def __init__(self, entries: Iterable[tuple[bytes, Principal]]) -> None:
        self._entries = list(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def parse(cls, raw: str) -> TokenRegistry:
        """Parse a `SOMA_ADMIN_TOKENS` value; raises ValueError naming the entry, never its token."""
        return cls.of(parse_tokens(raw))

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenRegistry:
        """The registry of `settings`; a missing or malformed value is a one-line `SettingsError`."""
        return cls.of(settings.admin.grants())

    @classmethod
    def of(cls, grants: Iterable[TokenGrant]) -> TokenRegistry:
        """The digests of the granted tokens, each with the principal it authenticates."""
        return cls((_digest(g.token), Principal(g.actor, g.all_tenants, g.tenants)) for g in grants)

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


RETENTION_VARIABLE = "SOMA_OUTBOX_RETENTION"


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
        raise RowsNotFound(
            f"ids: {len(missing)} unknown id(s): {shown}{' ...' if len(missing) > 10 else ''}"
            f" (never written, or sent longer ago than the retention and pruned: {RETENTION_VARIABLE})"
        )
    tenants = set(found.values())
    if tenant is not None and tenants - {tenant}:
        raise InvalidFilter("ids", f"{sum(t != tenant for t in found.values())} id(s) belong to another tenant")
    if len(tenants) > 1:
        raise InvalidFilter("ids", f"the ids span {len(tenants)} tenants; replay one tenant at a time")
    if tenant is None and not tenants:
        raise InvalidFilter("ids", "no ids given")
    return tenant if tenant is not None else next(iter(tenants))
