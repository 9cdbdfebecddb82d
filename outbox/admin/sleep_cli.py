"""`soma sleep show|set|policy show|policy set`: a tenant's cognitive sleep from a terminal.

The commands run the admin API's own code (outbox.admin.sleep): the same checks (ENABLE_SLEEP on
for the tenant, the policy validated), the same SleepRequest through the outbox with its audit,
the same published ConfigUpdate. A terminal user holds the platform's credentials, so it acts on
any tenant as ``cli:<os user>``; with ``--token-file`` it acts as that admin token, with its scope.
Errors are one line on stderr, exit 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from soma.cli.context import console, settings

if TYPE_CHECKING:
    from outbox.admin.auth import Principal
    from outbox.admin.sleep import SleepService

T = TypeVar("T")

app = typer.Typer(help="Cognitive sleep per tenant: show or set its state and policy (audited).",
                  no_args_is_help=True)
policy_app = typer.Typer(help="The tenant's sleep policy (the SLEEP_POLICY live setting).", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

TenantOpt = typer.Option(..., "--tenant", help="The tenant.")
TokenOpt = typer.Option(
    None, "--token-file", help="Act as this admin token (a file holding it; '-' reads stdin): its scope applies."
)
JsonOpt = typer.Option(False, "--json", help="One JSON document instead of text.")
POLICY_MAX_BYTES = 65_536


@contextmanager
def _service() -> Iterator[SleepService]:
    from outbox.admin.cli import _engine
    from outbox.admin.live import LiveView
    from outbox.admin.sleep import SleepService
    from soma.clients import redis_client
    from soma.contracts.catalog import load_catalog
    from soma.contracts.codec import Codec

    s = settings()
    catalog = load_catalog()
    redis = redis_client(s)
    with _engine() as engine:
        try:  # a command reads the live settings once (no cache to share)
            yield SleepService(engine, s, catalog, Codec(catalog, s), LiveView(s, ttl_s=3600), redis)
        finally:
            redis.close()


def _call(tenant: str, token_file: Path | None, action: Callable[[SleepService, Principal, str], T]) -> T:
    """`action(service, principal, tenant)`: the tenant checked, the caller the OS user or --token-file's token."""
    from outbox.admin.dlq_cli import _principal
    from outbox.admin.filters import check_tenant

    wanted = check_tenant(tenant)
    principal = _principal(token_file)
    with _service() as service:
        return action(service, principal, wanted)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str, ensure_ascii=False) + "\n")


def _state_line(view: dict[str, Any]) -> str:
    if not view["recorded"]:
        return f"tenant {view['tenant']}: awake (no transition recorded, seq 0)"
    until = f" until {view['until']}" if view["until"] else ""
    return (f"tenant {view['tenant']}: {view['state']}{until} (seq {view['seq']}, {view['reason']} by "
            f"{view['requested_by']}, since {view['since']}, from {view['from_state']})")


@app.command("show")
def show(tenant: str = TenantOpt, token_file: Path | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """The tenant's sleep state: the integrator's latest transition (Redis sleep:{tenant}), else awake."""
    view = _call(tenant, token_file, lambda service, principal, wanted: service.current(principal, wanted))
    if as_json:
        _print_json(view)
        return
    console.print(_state_line(view), markup=False)
    if view["params"]:
        console.print("params: " + ", ".join(f"{k}={v}" for k, v in view["params"].items()), markup=False)


def _change(state: str, for_: str | None, until: str | None, wait: float) -> Any:
    """The request, validated like the API's body; a bad option is one line naming it."""
    from pydantic import ValidationError

    from outbox.admin.sleep import SleepModeIn
    from outbox.errors import InvalidFilter

    body: dict[str, Any] = {"state": state, "wait_s": wait}
    body |= {"for": for_} if for_ is not None else {}
    body |= {"until": until} if until is not None else {}
    try:
        return SleepModeIn.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        names = {"state": "STATE", "for": "--for", "until": "--until", "wait_s": "--wait"}
        field = next((names[str(p)] for p in first["loc"] if str(p) in names), "options")
        raise InvalidFilter(field, str(first["msg"]).removeprefix("Value error, ")) from None


@app.command("set")
def set_(
    state: str = typer.Argument(..., metavar="STATE", help="awake, light, deep or freeze."),
    tenant: str = TenantOpt,
    for_: str | None = typer.Option(None, "--for", help="How long, e.g. 30m, 1h30m, 90s (at most 30d)."),
    until: str | None = typer.Option(None, "--until", help="Wake at this ISO-8601 time (no zone = UTC)."),
    wait: float = typer.Option(0.0, "--wait", help="Wait up to this many seconds for the integrator's transition."),
    token_file: Path | None = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Ask for a sleep state: a SleepRequest through the outbox (audited); the integrator decides it.

    With --wait, wait for the transition and exit 1 if it does not show in time.
    """
    change = _change(state, for_, until, wait)

    def request(service: SleepService, principal: Principal, wanted: str) -> tuple[Any, dict[str, Any] | None]:
        requested = service.request(principal, wanted, change)
        waited = service.wait(wanted, requested.request_id, change.wait_s) if change.wait_s > 0 else None
        return requested, waited

    requested, transition = _call(tenant, token_file, request)
    wanted = requested.tenant
    if as_json:
        _print_json({"request_id": requested.request_id, "tenant": wanted, "state": requested.state,
                     "until": requested.until, "audit_event_id": requested.audit_event_id, "transition": transition})
        return
    limit = f" until {requested.until.isoformat()}" if requested.until else ""
    console.print(f"requested {requested.state}{limit} for tenant {wanted}: request {requested.request_id} "
                  f"(audit event {requested.audit_event_id})", markup=False)
    if transition is not None:
        console.print(_state_line(transition), markup=False)


@policy_app.command("show")
def policy_show(tenant: str = TenantOpt, token_file: Path | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """The tenant's effective sleep policy (tenant override, else global, else default) and its version."""
    found = _call(tenant, token_file, lambda service, principal, wanted: service.policy(principal, wanted))
    if as_json:
        _print_json(found)
        return
    console.print(f"tenant {found['tenant']}: SLEEP_POLICY v{found['version']} ({found['scope']})", markup=False)
    console.print_json(json.dumps(found["policy"]))


def _policy_text(file: Path) -> str:
    from outbox.errors import InvalidFilter

    try:
        data = sys.stdin.buffer.read(POLICY_MAX_BYTES + 1) if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        raise InvalidFilter("--file", f"cannot read {file}: {exc.strerror or exc}") from None
    if len(data) > POLICY_MAX_BYTES:
        raise InvalidFilter("--file", f"{file} is larger than {POLICY_MAX_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFilter("--file", f"{file} is not UTF-8 text (byte {exc.start})") from None


@policy_app.command("set")
def policy_set(
    tenant: str = TenantOpt,
    file: Path = typer.Option(..., "--file", help="The policy as a JSON object ('-' reads stdin)."),
    token_file: Path | None = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Validate the policy, publish it for the tenant on config_updates (next version), audit it."""
    text = _policy_text(file)
    result = _call(tenant, token_file, lambda service, principal, wanted: service.set_policy(principal, wanted, text))
    if as_json:
        _print_json(result)
        return
    console.print(f"published SLEEP_POLICY v{result['version']} for tenant {result['tenant']} (config event "
                  f"{result['config_event_id']}, audit event {result['audit_event_id']})", markup=False)
