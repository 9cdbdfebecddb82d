from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hs
from schemathesis import GenerationMode

from outbox.api import create_app
from soma.clients import database_engine
from tests.support.outbox_admin import ACME_TOKEN, ADMIN_TOKEN, forget, migrate, seed, tenants, with_tokens

HEADERS = [{"Authorization": f"Bearer {ADMIN_TOKEN}"}, {"Authorization": f"Bearer {ACME_TOKEN}"}]

@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_deep(settings, run_id, mode):
    migrate(settings)
    names = tenants(run_id)
    engine = database_engine(settings)
    seed(engine, names[0], 3, status="failed")
    app = create_app(with_tokens(settings, *names), engine=engine)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []
    for result in schema.get_all_operations():
        op = result.ok()
        if mode is GenerationMode.NEGATIVE and op.label == "GET /healthz":
            continue
        @given(case=op.as_strategy(generation_mode=mode))
        @hs(max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            for h in HEADERS:
                try:
                    case.call_and_validate(headers=h)
                except BaseException as exc:
                    failures.append((op.label, h["Authorization"][7:11], str(exc)[:600]))
        run()
    forget(engine, names)
    seen = {}
    for f in failures:
        key = f[2].splitlines()[0] if f[2] else ""
        seen.setdefault((f[0], key), f)
    for v in list(seen.values())[:30]:
        print("FAIL", v[0], v[2][:1200])
    print("total failures", len(failures))
