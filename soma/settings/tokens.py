"""`SOMA_ADMIN_TOKENS` parsed: the bearer tokens of the admin API, each with its scopes.

Scopes are ``admin`` (every tenant) or ``tenant:<id>`` (one tenant; several may be given,
space-separated). Two spellings:

    {"<token>": "admin", "<token>": "tenant:acme", "<token>": {"scope": "tenant:a tenant:b", "name": "ops-ab"}}
    <token>=admin,<token>=tenant:acme

The value is parsed when asked for (`AdminSettings.grants()`), not when settings load, so a
malformed value stops only the admin API, as before. Errors name the entry number, never a token.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

ADMIN_SCOPE = "admin"
TENANT_SCOPE_PREFIX = "tenant:"
MIN_TOKEN_LENGTH = 16
_NAME = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: what an HTTP bearer credential can carry


@dataclass(frozen=True)
class TokenGrant:
    """One configured token, its scopes, and its audit name if configured."""

    token: str = field(repr=False)
    all_tenants: bool
    tenants: frozenset[str]
    name: str | None = None

    @property
    def actor(self) -> str:
        """The name audit records give the caller: the configured one, else the token's fingerprint."""
        return self.name or fingerprint(self.token)


def fingerprint(token: str) -> str:
    """The name of an unnamed token in logs and audit records: not the token, not reversible."""
    return f"token-{hashlib.sha256(token.encode()).hexdigest()[:8]}"


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


def token_entries(raw: str) -> list[tuple[str, object]]:
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


def parse_tokens(raw: str) -> tuple[TokenGrant, ...]:
    """Every grant of a `SOMA_ADMIN_TOKENS` value; raises ValueError naming the entry, never its token."""
    grants: list[TokenGrant] = []
    seen_tokens: set[str] = set()
    seen_names: set[str] = set()
    for number, (token, spec) in enumerate(token_entries(raw), 1):
        if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH or not _TOKEN.match(token):
            raise ValueError(f"entry {number}: a token must be at least {MIN_TOKEN_LENGTH} visible ASCII characters")
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
        grant = TokenGrant(token, all_tenants, tenants, name if isinstance(name, str) else None)
        if token in seen_tokens or grant.actor in seen_names:
            raise ValueError(f"entry {number}: the same token or name is configured twice")
        seen_tokens.add(token)
        seen_names.add(grant.actor)
        grants.append(grant)
    if not grants:
        raise ValueError("no tokens configured")
    return tuple(grants)


def token_covering(raw: str, tenant: str) -> str | None:
    """The first configured token whose scopes cover `tenant` (for a client such as `soma demo`), or None."""
    try:
        pairs = token_entries(raw)
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


def token_strings(raw: str) -> list[str]:
    """The tokens of a value, even a malformed one (for log redaction, which must never fail)."""
    with contextlib.suppress(ValueError):
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            return [str(token) for token in parsed]
    return [item.partition("=")[0].strip() for item in raw.split(",") if item.strip()]
