"""What a tenant id may be: it becomes part of record keys (`tenant:session`), a header, a metric label
and a log field, so it is refused at the edge when it could break any of them."""

from __future__ import annotations

import re

from soma.errors import EventValidationError

TENANT_MAX = 200
# Letters, digits and . _ @ - ; no ':' (the key separator), no space, no control character.
TENANT_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._@-]*$"  # also the admin API's OpenAPI pattern
TENANT_RULE = "letters, digits and . _ @ - (no ':', space or control character)"
_TENANT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@-]*")  # fullmatch: "$" would let a final newline in


class InvalidTenant(EventValidationError):
    """A tenant id that keys, headers, labels or logs could not carry safely."""


def is_valid_tenant(tenant: object) -> bool:
    return isinstance(tenant, str) and 0 < len(tenant) <= TENANT_MAX and _TENANT.fullmatch(tenant) is not None


def check_tenant(tenant: object, where: str) -> str:
    """`tenant` if it is a valid tenant id, else `InvalidTenant` in one line naming `where` (a topic)."""
    if not isinstance(tenant, str) or not tenant:
        raise InvalidTenant(f"{where}: tenant id is empty")
    if len(tenant) > TENANT_MAX:
        raise InvalidTenant(f"{where}: tenant id is {len(tenant)} characters long (at most {TENANT_MAX})")
    if not _TENANT.fullmatch(tenant):
        raise InvalidTenant(
            f"{where}: tenant id {tenant[:60]!r} may hold only {TENANT_RULE}"
        )
    return tenant
