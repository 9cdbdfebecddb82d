"""Tenant ids are refused at the edge when keys, headers, labels or logs could not carry them."""

from __future__ import annotations

import pytest

from soma.contracts.catalog import load_catalog
from soma.contracts.codec import Codec
from soma.contracts.events import prepare
from soma.contracts.tenants import InvalidTenant, check_tenant
from soma.settings import load_settings


@pytest.mark.parametrize("tenant", ["acme", "tenant-a", "_global", "t.relay.5f2c", "ops@acme", "A1"])
def test_ordinary_tenant_ids_pass(tenant: str) -> None:
    assert check_tenant(tenant, "chat.messages") == tenant


@pytest.mark.parametrize(("tenant", "problem"), [
    ("", "is empty"), ("acme:eu", "no ':'"), ("acme corp", "no ':', space"), ("acme\x00", "control character"),
    ("acme\n", "control character"), ("-acme", "letters, digits"), ("x" * 201, "at most 200"), ("ünï", "letters"),
])
def test_unsafe_tenant_ids_are_refused_in_one_line(tenant: str, problem: str) -> None:
    with pytest.raises(InvalidTenant) as caught:
        check_tenant(tenant, "chat.messages")
    message = str(caught.value)
    assert message.startswith("chat.messages: tenant id")
    assert problem in message
    assert "\n" not in message


def test_prepare_refuses_an_unsafe_tenant_before_encoding() -> None:
    settings = load_settings()
    catalog = load_catalog()
    event = {"session_id": "s", "sequence": 1, "role": "user", "content": "hi"}
    with pytest.raises(InvalidTenant):
        prepare(catalog, Codec(catalog, settings), settings, "chat.messages", event, tenant="a b")
