"""The supervisor loop: start children behind health gates, watch them, restart, stop in reverse.

- Each child runs in its own process group (its own session), with its output appended to its
  own log file, and gets SIGTERM should the supervisor itself die (Linux parent-death signal).
- A child starts once every component it depends on answers `/readyz` with 200.
- A child that exits (or whose `/readyz` reports a stall) is restarted after a `Backoff` delay.
- Stopping: SIGTERM to the process groups of the highest dependency level first, then the next
  level, all within one grace period (`SOMA_SUPERVISOR_STOP_GRACE_S`); whatever is left then
  gets SIGKILL, by process group and pid. Nothing is ever signalled by name.
- The state file (`state.py`) is rewritten on every change (and every SOMA_SUPERVISOR_READY_POLL_S).
- A ready child is probed every SOMA_SUPERVISOR_READY_POLL_S, one starting or unready every
  SOMA_SUPERVISOR_POLL_S: each probe costs the child its dependency checks.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from soma.backoff import Backoff
from soma.observability.logs import log_line
from soma.ops.supervisor.probe import Probe, fetch
from soma.ops.supervisor.spec import ComponentSpec, resolve, stop_waves
from soma.ops.supervisor.state import ComponentState, Paths, PlatformState, write_state
from soma.settings import Settings

log = logging.getLogger("soma.supervisor")
TICK_S = 0.2  # while a child starts, restarts or stops
STEADY_TICK_S = 1.0  # every child ready (or disabled): a crash is noticed within a second
PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking the kernel to SIGTERM the child when its parent dies (Linux only).

    Resolved here, in the parent, so the forked child only makes one foreign call.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return hook


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _probe_async(url: str, timeout_s: float) -> futures.Future[Probe]:
    """`fetch` on a daemon thread (a probe still waiting on a dying child never delays our exit)."""
    future: futures.Future[Probe] = futures.Future()
    threading.Thread(target=lambda: future.set_result(fetch(url, timeout_s)), name="readyz", daemon=True).start()
    return future


@dataclass
class Child:
    spec: ComponentSpec
    state: ComponentState
    backoff: Backoff
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0  # monotonic
    restart_at: float | None = None
    kill_at: float | None = None  # SIGKILL the group then, unless it exited
    probe: futures.Future[Probe] | None = None
    probed_at: float = 0.0
    ready_once: bool = False
    log: IO[bytes] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        specs: Sequence[ComponentSpec],
        paths: Paths,
        env: Mapping[str, str],
        on_ready: Callable[[PlatformState], None] | None = None,
    ) -> None:
        self.settings, self.paths, self.env = settings, paths, dict(env)
        self.specs = resolve(specs)
        self.on_ready = on_ready
        self.children = [
            Child(spec, ComponentState(
                name=spec.name, ready_url=spec.ready_url, log_file=str(paths.component_log(spec.name)),
                marker=spec.marker, depends_on=list(spec.depends_on),
                state="disabled" if spec.disabled else "pending", detail=spec.disabled,
            ), Backoff(settings.supervisor.backoff_base_s, settings.supervisor.backoff_max_s,
                       settings.supervisor.backoff_reset_s))
            for spec in self.specs
        ]
        self.by_name = {c.spec.name: c for c in self.children}
        self.state = PlatformState(os.getpid(), "starting", [c.state for c in self.children])
        self._stop = threading.Event()
        self._preexec = _parent_death_signal()
        self._all_ready_reported = False
        self._begun = time.monotonic()

    # --- control -------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            if not self._stop.is_set():
                log.info("%s received: stopping the platform", signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def publish(self, phase: str | None = None, detail: str | None = None) -> None:
        if phase is not None:
            self.state.phase = phase
        if detail is not None:
            self.state.detail = detail
        write_state(self.paths.state_file, self.state)

    # --- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        """Start, supervise until a stop is requested, then stop every child. Returns when all are gone."""
        (self.paths.root / "run").mkdir(parents=True, exist_ok=True)
        self.publish("running")
        last_publish = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                self._reap(now)
                self._start_due(now)
                self._probe(now)
                self._check_all_ready(now)
                if now - last_publish >= self.settings.supervisor.ready_poll_s:
                    self.publish()
                    last_publish = now
                self._stop.wait(STEADY_TICK_S if self._steady() else TICK_S)
        finally:
            self.shutdown()

    def _steady(self) -> bool:
        return all(c.state.state in ("ready", "disabled") and c.kill_at is None for c in self.children)

    def _reap(self, now: float) -> None:
        for child in self.children:
            if child.proc is None:
                continue
            code = child.proc.poll()
            if code is None:
                if child.kill_at is not None and now >= child.kill_at:
                    log.warning("%s (pid %d) did not stop in time: SIGKILL", child.spec.name, child.proc.pid)
                    _signal_group(child.proc.pid, signal.SIGKILL)
                    child.kill_at = None
                continue
            pid = child.proc.pid
            _signal_group(pid, signal.SIGKILL)  # helpers it may have left in its group
            self._closed(child)
            uptime = now - child.started
            delay = child.backoff.on_exit(uptime)
            child.restart_at = now + delay
            child.state.last_exit = code
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
            child.state.state, child.state.detail = "backoff", f"{how} after {uptime:.0f}s; restart in {delay:.1f}s"
            log.warning("%s (pid %d) %s after %.1fs: restarting in %.1fs (log %s)",
                        child.spec.name, pid, how, uptime, delay, child.state.log_file)
            self.publish()

    def _closed(self, child: Child) -> None:
        child.proc, child.kill_at, child.probe = None, None, None
        child.state.pid, child.state.started_at = None, None
        if child.log is not None:
            child.log.close()
            child.log = None

    def _start_due(self, now: float) -> None:
        for child in self.children:
            st = child.state.state
            if st == "backoff" and child.restart_at is not None and now >= child.restart_at:
                child.state.restarts += 1
                self._spawn(child, now)
            elif st in ("pending", "waiting"):
                missing = [d for d in child.spec.depends_on if self.by_name[d].state.state != "ready"]
                if missing:
                    waiting = f"waiting for {', '.join(missing)}"
                    if child.state.detail != waiting:
                        log.info("%s: %s to be ready", child.spec.name, waiting)
                        child.state.state, child.state.detail = "waiting", waiting
                    continue
                self._spawn(child, now)

    def _spawn(self, child: Child, now: float) -> None:
        path = Path(child.state.log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        child.log = path.open("ab")
        # A line like the child's own (same format), so the whole file stays one JSON object per line.
        child.log.write((log_line(self.settings, child.spec.name, "soma.supervisor",
                                  f"soma up: starting {child.spec.name}") + "\n").encode())
        child.log.flush()
        try:
            child.proc = subprocess.Popen(
                list(child.spec.argv), stdin=subprocess.DEVNULL, stdout=child.log, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.paths.root / "run", start_new_session=True, preexec_fn=self._preexec,
            )
        except OSError as exc:
            child.log.close()
            child.log = None
            delay = child.backoff.on_exit(0.0)
            child.restart_at = now + delay
            child.state.state, child.state.detail = "backoff", f"cannot start: {exc}; retry in {delay:.1f}s"
            log.error("%s: cannot start %s: %s", child.spec.name, child.spec.argv[0], exc)
            return
        child.started, child.restart_at, child.probed_at, child.ready_once = now, None, 0.0, False
        child.state.pid, child.state.started_at = child.proc.pid, time.time()
        child.state.state, child.state.detail = "starting", ""
        log.info("%s: started pid %d (log %s)", child.spec.name, child.proc.pid, child.state.log_file)
        self.publish()

    def _probe(self, now: float) -> None:
        timeout = max(2.0, self.settings.telemetry.health_check_timeout_s * 4 + 1)
        for child in self.children:
            if child.proc is None or child.kill_at is not None:
                continue
            if child.probe is None:
                if now - child.probed_at >= self._probe_interval(child):
                    child.probe = _probe_async(child.spec.ready_url, timeout)
                    child.probed_at = now
                continue
            if not child.probe.done():
                continue
            result, child.probe = child.probe.result(), None
            self._judge(child, result, now)

    def _probe_interval(self, child: Child) -> float:
        """Coarse once ready: each probe costs the child its dependency checks."""
        sup = self.settings.supervisor
        return sup.ready_poll_s if child.state.state == "ready" else sup.poll_s

    def _judge(self, child: Child, result: Probe, now: float) -> None:
        st = child.state
        if result.ready:
            if st.state != "ready":
                log.info("%s: ready (pid %s, %.1fs after start)", child.spec.name, st.pid, now - child.started)
                st.state, st.detail = "ready", ""
                child.ready_once = True
                self.publish()
            return
        detail = "; ".join(result.failures()) or "not ready"
        if st.state == "ready":
            log.warning("%s: not ready: %s", child.spec.name, detail)
        st.state = "unready" if child.ready_once else "starting"
        st.detail = detail
        stall = result.body.get("checks", {}).get("stall") if isinstance(result.body.get("checks"), dict) else None
        if isinstance(stall, dict) and stall.get("ok") is False and child.proc is not None:
            log.error("%s: stalled (%s): restarting it", child.spec.name, stall.get("detail", ""))
            self._terminate(child, now)

    def _terminate(self, child: Child, now: float, grace_s: float | None = None) -> None:
        if child.proc is None or child.kill_at is not None:
            return
        _signal_group(child.proc.pid, signal.SIGTERM)
        child.kill_at = now + (self.settings.supervisor.stop_grace_s if grace_s is None else grace_s)
        child.state.state = "stopping"

    def _check_all_ready(self, now: float) -> None:
        if self._all_ready_reported:
            return
        enabled = [c for c in self.children if not c.spec.disabled]
        if all(c.state.state == "ready" for c in enabled):
            self._all_ready_reported = True
            log.info("all %d components ready after %.1fs", len(enabled), now - self._begun)
            self.publish()
            if self.on_ready is not None:
                self.on_ready(self.state)
        elif now - self._begun > self.settings.supervisor.ready_timeout_s:
            self._all_ready_reported = True  # say it once; keep supervising
            late = [f"{c.spec.name} ({c.state.state}: {c.state.detail})" for c in enabled if c.state.state != "ready"]
            log.error("not ready after %.0fs (SOMA_SUPERVISOR_READY_TIMEOUT_S): %s",
                      self.settings.supervisor.ready_timeout_s, "; ".join(late))

    # --- stopping --------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop every child, dependents first, within one grace period; SIGKILL what is left."""
        self._stop.set()
        self.publish("stopping")
        deadline = time.monotonic() + self.settings.supervisor.stop_grace_s
        for wave in stop_waves(self.specs):
            members = [self.by_name[name] for name in wave]
            for child in members:
                if child.proc is not None:
                    log.info("%s: stopping pid %d (SIGTERM to its process group)", child.spec.name, child.proc.pid)
                    _signal_group(child.proc.pid, signal.SIGTERM)
                    child.state.state = "stopping"
                elif child.state.state != "disabled":
                    child.state.state, child.state.detail = "stopped", ""
            self.publish()
            while time.monotonic() < deadline and any(c.proc is not None and c.proc.poll() is None for c in members):
                time.sleep(0.05)
        for child in self.children:
            if child.proc is None:
                continue
            if child.proc.poll() is None:
                log.warning("%s (pid %d) still running after the %.0fs grace: SIGKILL", child.spec.name,
                            child.proc.pid, self.settings.supervisor.stop_grace_s)
                _signal_group(child.proc.pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=10)
            code = child.proc.returncode
            _signal_group(child.proc.pid, signal.SIGKILL)  # anything left in its group
            self._closed(child)
            child.state.state, child.state.last_exit, child.state.detail = "stopped", code, ""
        self.publish("stopped")
        log.info("all components stopped")
