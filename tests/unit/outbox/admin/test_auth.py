"""Admin tokens and scopes: parsing SOMA_ADMIN_TOKENS, authentication, and who may replay which ids."""

from __future__ import annotations

import hashlib
import json

import pytest

from outbox.admin.auth import Principal, TokenRegistry, authorize_ids
from outbox.errors import AccessDenied, InvalidFilter, RowsNotFound
from soma.errors import SettingsError
from soma.settings import load_settings
from soma.settings.tokens import fingerprint, parse_scopes

ADMIN = "admin-token-0123456789"
ACME = "acme-token-0123456789"
GLOBEX = "globex-token-012345678"


def test_json_spelling_with_names_and_scopes() -> None:
    registry = TokenRegistry.parse(json.dumps({
        ADMIN: "admin",
        ACME: {"scope": "tenant:acme", "name": "acme-ops"},
        GLOBEX: "tenant:globex tenant:initech",
    }))
    assert len(registry) == 3
    admin = registry.authenticate(ADMIN)
    assert admin is not None
    assert admin.all_tenants
    assert admin.actor == fingerprint(ADMIN)
    acme = registry.authenticate(ACME)
    assert acme == Principal("acme-ops", False, frozenset({"acme"}))
    globex = registry.authenticate(GLOBEX)
    assert globex is not None
    assert globex.tenants == {"globex", "initech"}


def test_comma_spelling() -> None:
    registry = TokenRegistry.parse(f"{ADMIN}=admin, {ACME}=tenant:acme")
    acme = registry.authenticate(ACME)
    assert acme is not None
    assert acme.can_access("acme")
    assert not acme.can_access("globex")


@pytest.mark.parametrize("presented", [None, "", "nope", ACME + "x", ACME[:-1], ACME.upper()])
def test_unknown_tokens_authenticate_nobody(presented: str | None) -> None:
    registry = TokenRegistry.parse(f"{ACME}=tenant:acme")
    assert registry.authenticate(presented) is None


def test_fingerprint_is_a_sha256_prefix_not_the_token() -> None:
    assert fingerprint(ACME) == "token-" + hashlib.sha256(ACME.encode()).hexdigest()[:8]
    assert ACME not in fingerprint(ACME)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("{not json", "not a JSON object"),
        ("[1, 2]", "expected a JSON object"),
        ('["a"]', "expected a JSON object"),
        ("short=admin", "entry 1: a token must be at least 16"),
        (f"{ACME}", "entry 1: expected token=scope"),
        (f"{ACME}=root", "entry 1: unknown scope 'root'"),
        (f"{ACME}=tenant:", "entry 1: unknown scope"),
        (f"{ACME}=", "entry 1: empty scope"),
        (f"{ACME}=admin,{ACME}=tenant:a", "entry 2: the same token or name is configured twice"),
        (json.dumps({ACME: {"scope": "admin", "name": "bad name!"}}), "entry 1: a name is"),
        (json.dumps({ACME: 42}), "entry 1: the scope must be a string"),
        (json.dumps({"tok en with spaces!!": "admin"}), "entry 1: a token must be"),
        ("{}", "no tokens configured"),
    ],
)
def test_bad_configuration_names_the_entry_and_never_the_token(raw: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as caught:
        TokenRegistry.from_settings(load_settings(admin_tokens=raw))
    message = str(caught.value)
    assert message.startswith("invalid setting SOMA_ADMIN_TOKENS: ")
    assert fragment in message
    assert ACME not in message
    assert "\n" not in message
    assert caught.value.__cause__ is None


def test_unset_tokens_refuse_to_build_a_registry() -> None:
    with pytest.raises(SettingsError, match="SOMA_ADMIN_TOKENS is not set"):
        TokenRegistry.from_settings(load_settings(admin_tokens=None))


def test_tokens_are_masked_in_the_settings_view() -> None:
    settings = load_settings(admin_tokens=f"{ACME}=admin")
    assert ACME not in repr(settings) + str(settings.safe_view())
    assert settings.safe_view()["SOMA_ADMIN_TOKENS"] == "***"


def test_scopes() -> None:
    assert parse_scopes("admin") == (True, frozenset())
    assert parse_scopes("tenant:a  tenant:b") == (False, frozenset({"a", "b"}))
    with pytest.raises(ValueError, match="unknown scope"):
        parse_scopes("tenants:a")


def test_principal_require() -> None:
    Principal("x", all_tenants=True).require("anyone")
    Principal("x", tenants=frozenset({"a"})).require("a")
    with pytest.raises(AccessDenied):
        Principal("x", tenants=frozenset({"a"})).require("b")


ACME_ONLY = Principal("acme", tenants=frozenset({"acme"}))
ROOT = Principal("root", all_tenants=True)


def test_own_ids_resolve_to_their_tenant() -> None:
    assert authorize_ids(ACME_ONLY, [1, 2], {1: "acme", 2: "acme"}, None) == "acme"
    assert authorize_ids(ACME_ONLY, [1, 2], {1: "acme", 2: "acme"}, "acme") == "acme"


@pytest.mark.parametrize(
    ("ids", "found", "tenant"),
    [
        ([1], {1: "globex"}, None),  # another tenant's id
        ([1, 2], {1: "acme", 2: "globex"}, None),  # mixed with own ids: the whole request is refused
        ([1, 2], {1: "acme", 2: "globex"}, "acme"),
        ([1], {1: "acme"}, "globex"),  # asking for another tenant at all
        ([1, 9], {1: "acme"}, "acme"),  # an unknown id looks exactly like someone else's
    ],
)
def test_a_tenant_token_is_refused_anything_outside_its_scope(
    ids: list[int], found: dict[int, str], tenant: str | None
) -> None:
    with pytest.raises(AccessDenied) as caught:
        authorize_ids(ACME_ONLY, ids, found, tenant)
    assert "globex" not in str(caught.value)
    assert "2" not in str(caught.value)
    assert "9" not in str(caught.value)


def test_an_admin_token_gets_precise_errors() -> None:
    with pytest.raises(RowsNotFound, match="ids: 1 unknown id"):
        authorize_ids(ROOT, [1, 9], {1: "acme"}, None)
    with pytest.raises(InvalidFilter, match="span 2 tenants") as caught:
        authorize_ids(ROOT, [1, 2], {1: "acme", 2: "globex"}, None)
    assert caught.value.field == "ids"
    with pytest.raises(InvalidFilter, match="another tenant"):
        authorize_ids(ROOT, [1, 2], {1: "acme", 2: "globex"}, "acme")
    assert authorize_ids(ROOT, [2], {2: "globex"}, None) == "globex"
