"""`soma up [--detach]`, `soma down`, `soma ps`, `soma health`: the whole platform under one supervisor."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import typer
from rich.table import Column, Table

from soma.cli.context import console, err_console, settings

if TYPE_CHECKING:
    from soma.ops.supervisor.state import Paths, PlatformState
    from soma.settings import Settings

STYLE = {"ready": "green", "starting": "yellow", "waiting": "yellow", "pending": "yellow", "unready": "red",
         "backoff": "red", "stopping": "yellow", "stopped": "dim", "disabled": "dim", "gone": "red"}


def _report(line: str) -> None:
    err_console.print(f"[dim]{line}[/dim]")


def _styled(state: str) -> str:
    return f"[{STYLE.get(state, 'white')}]{state}[/]"


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _versions(config: Settings) -> str:
    from importlib.metadata import PackageNotFoundError, version

    import confluent_kafka

    from soma.ops.stack.cluster import managed_pids
    from soma.ops.stack.kafka import kafka_version

    def of(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "?"

    nodes = len(managed_pids(config))
    local = f"{kafka_version()} (local stack{f', {nodes} brokers' if nodes > 1 else ''})"
    broker = local if nodes else f"at {config.kafka.bootstrap}"
    return (f"soma {of('soma-events')}, faust-streaming {of('faust-streaming')}, confluent-kafka "
            f"{of('confluent-kafka')} (librdkafka {confluent_kafka.libversion()[0]}), Kafka broker {broker}")


def print_summary(state: PlatformState, config: Settings) -> None:
    """The startup summary: components, where their health is, flags that change behaviour, versions."""
    table = Table("component", "pid", "health", "state", title="soma platform")
    for c in state.components:
        table.add_row(c.name, str(c.pid or "-"), c.ready_url if c.state != "disabled" else "-",
                      _styled(c.state) + (f" ({c.detail})" if c.detail and c.state != "ready" else ""))
    console.print(table)
    schema = config.database.database_schema or "(default search_path)"
    live = config.streams.live
    console.print(f"flags: ENABLE_COG_THREADS={live.enable_cog_threads}, OPA {config.streams.opa_url or 'off'}, "
                  f"topic prefix {config.kafka.topic_prefix or '(none)'}, database schema {schema}", soft_wrap=True)
    console.print(f"versions: {_versions(config)}", soft_wrap=True)
    if settings().admin.tokens is None:
        from soma.ops.supervisor.local_token import token_file

        console.print(f"admin API: SOMA_ADMIN_TOKENS is unset, so an admin-scoped token was generated in "
                      f"{token_file(config)} (Authorization: Bearer <its contents>)", soft_wrap=True)
    console.print(f"logs: {_paths().root / 'logs'}; `soma ps`, `soma health`; stop: Ctrl-C or `soma down`",
                  soft_wrap=True)


def _paths() -> Paths:
    from soma.ops.supervisor.state import Paths

    return Paths.of(settings())


class _Out:
    """Bring-up's progress and warnings on stderr (dim, yellow), its results on stdout."""

    def progress(self, line: str) -> None:
        _report(line)

    def warning(self, line: str) -> None:
        err_console.print(f"[yellow]{line}[/]", soft_wrap=True)

    def result(self, line: str) -> None:
        console.print(line)


def _detach(config: Settings, timeout: float) -> None:
    from soma.ops.supervisor.bringup import BringupFailed, start_detached

    try:
        state = start_detached(config, timeout, _Out())
    except BringupFailed as failed:
        if failed.tail is not None:
            err_console.print(failed.tail, soft_wrap=True, markup=False, highlight=False)
        for c in failed.late:
            err_console.print(f"soma up: {c.name} not ready after {timeout:.0f}s: {c.state}"
                              f"{f' ({c.detail})' if c.detail else ''}; log {c.log_file}", soft_wrap=True)
        raise typer.Exit(_fail(failed.message)) from None
    print_summary(state, config)


def _fail(message: str) -> int:
    err_console.print(f"soma up: {message}", soft_wrap=True, markup=False)
    return 1


def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background; return once all are ready."),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Seconds to wait for readiness (default SOMA_SUPERVISOR_READY_TIMEOUT_S)."),
) -> None:
    """Run the platform: the stack, migrations, topics, then the relay, admin API and streams, supervised.

    Foreground (default): Ctrl-C or SIGTERM stops every component (dependents first) within
    SOMA_SUPERVISOR_STOP_GRACE_S. --detach: start it in the background and return once every
    component is ready (`soma ps`, `soma health`, `soma down`).
    """
    from soma.ops.supervisor.local_token import with_local_admin_token

    config = with_local_admin_token(settings(), create=True)  # the admin API runs on a fresh clone too
    running = _paths().supervisor().pid()
    if running is not None and running != os.getpid():
        raise typer.Exit(_fail(f"the platform already runs (supervisor pid {running}): `soma ps`, `soma down`"))
    wait = timeout if timeout is not None else config.supervisor.ready_timeout_s
    if detach:
        _detach(config, wait)
    else:
        from soma.ops.supervisor.bringup import run_foreground

        run_foreground(config, wait, _Out(), on_ready=lambda state: print_summary(state, config))


def down(
    stack: bool = typer.Option(False, "--stack", help="Also stop the local Kafka/PostgreSQL/Redis `soma up` started."),
) -> None:
    """Stop a running platform (its supervisor stops the components); the stack stays up unless --stack."""
    from soma.ops.processes import kill_leftover, stop_process
    from soma.ops.supervisor.state import read_state

    config = settings()
    paths = _paths()
    state = read_state(paths.state_file)
    pid = paths.supervisor().pid()
    if pid is None:
        console.print("soma down: the platform is not running")
    else:
        wait_s = config.supervisor.stop_grace_s + 15
        if stop_process(pid, wait_s):
            err_console.print(f"soma down: the supervisor (pid {pid}) did not stop within {wait_s:.0f}s: SIGKILL")
        console.print(f"soma down: supervisor {pid} stopped")
    # Whatever a dead or killed supervisor left behind: by pid, only if the command line still matches.
    for c in (state.components if state else []):
        if c.pid is not None and kill_leftover(c.pid, c.marker):
            err_console.print(f"soma down: {c.name} (pid {c.pid}) outlived its supervisor: SIGKILL")
    paths.pid_file.unlink(missing_ok=True)
    if stack:
        from soma.ops import stack as local_stack

        local_stack.down(config, report=_report)
        console.print("soma stack: down")


def ps() -> None:
    """The platform's components: state, pid, restarts, uptime, health URL (from the supervisor's state file)."""
    from soma.ops.processes import is_running
    from soma.ops.supervisor.state import read_state

    paths = _paths()
    state = read_state(paths.state_file)
    if state is None:
        console.print(f"soma ps: no platform state at {paths.state_file}: start it with `soma up --detach`")
        return
    alive = paths.supervisor().pid() is not None
    now = time.time()
    table = Table("component", "state", "pid", "restarts", "uptime", Column("health", overflow="fold"),
                  Column("detail", overflow="fold"),
                  title=f"soma platform ({'supervisor pid ' + str(state.supervisor_pid) if alive else 'not running'}"
                        f", {state.phase})")
    for c in state.components:
        current = c.state
        if c.pid is not None and not is_running(c.pid, c.marker):
            current = "gone"
        table.add_row(c.name, _styled(current), str(c.pid or "-"), str(c.restarts),
                      _uptime(c.uptime_s(now)) if current != "gone" else "-",
                      c.ready_url if c.state != "disabled" else "-", c.detail)
    console.print(table)
    if not alive and state.phase not in ("stopped",):
        err_console.print(f"soma ps: the supervisor is not running (last phase: {state.phase}"
                          f"{': ' + state.detail if state.detail else ''})", soft_wrap=True)


def health() -> None:
    """Stack health plus every component's /readyz in one table; exit 1 naming whatever is not ready."""
    from soma.ops.supervisor.local_token import with_local_admin_token
    from soma.ops.supervisor.probe import check_platform

    checked = check_platform(with_local_admin_token(settings()))
    infra, specs, results, supervised = checked.infra, checked.specs, checked.probes, checked.supervised
    table = Table("component", "status", Column("address", overflow="fold"), Column("detail", overflow="fold"),
                  title="soma health")
    failures: list[str] = []
    for row in infra:
        table.add_row(row.service, "[green]healthy[/]" if row.healthy else "[red]down[/]", row.address,
                      "" if row.healthy else row.detail)
        if not row.healthy:
            failures.append(f"{row.service}: {row.detail}")
    for spec in specs:
        if spec.disabled:
            table.add_row(spec.name, "[dim]disabled[/]", "-", spec.disabled)
            continue
        probe = results[spec.name]
        detail = "; ".join(probe.failures())
        known = supervised.get(spec.name)
        if known is not None and not probe.ready and known.state != "ready":
            said = known.detail if known.state in ("backoff", "waiting") else ""
            detail += f" [supervisor: {known.state}, {known.restarts} restart(s){f', {said}' if said else ''}]"
        ok_checks = ", ".join(probe.body.get("checks", {})) if probe.ready else ""
        table.add_row(spec.name, "[green]ready[/]" if probe.ready else "[red]NOT READY[/]", spec.ready_url,
                      f"checks: {ok_checks}" if probe.ready else detail)
        if not probe.ready:
            failures.append(f"{spec.name} not ready: {detail}")
    console.print(table)
    for line in failures:
        err_console.print(f"soma health: {line}", soft_wrap=True, markup=False)
    if failures:
        raise typer.Exit(1)
