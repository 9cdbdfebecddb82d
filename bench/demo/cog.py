"""The demo's cog steps: predictor updates -> leader changes, the Redis frame cache, segments, a live change."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from bench.demo.hops import MISSED, SKIPPED, Hop
from bench.demo.observe import Seen
from bench.demo.recorder import Chain, Recorder
from soma.contracts.events import EventProducer
from soma.settings import env_name

# Predictor updates after the first frame: (domain, confidence). Each new leader holds 4 frames,
# more than the default dwell of 3, so the segmenter closes a leader_change segment twice.
COG_SEQUENCE = (("plan", 5.0), ("act", 50.0), ("act", 50.0), ("act", 50.0), ("act", 50.0),
                ("recall", 500.0), ("recall", 500.0), ("recall", 500.0), ("recall", 500.0))
DEMO_TEMPERATURE = "0.25"


class CogSteps(Recorder):
    """Steps 2 and 3 of the scenario, for tenant `acme` (ENABLE_COG_THREADS switched on for it)."""

    acme: str
    producer: EventProducer
    redis: Any
    sent_at: dict[str, float]  # predictor update event id -> send time

    def _update(self, domain: str, confidence: float) -> str:
        event_id = str(uuid.uuid4())
        self.sent_at[event_id] = time.time()
        self.producer.send("cog.predictor_updates", {
            "event_id": event_id, "source_kind": "state", "predictor_id": "demo", "domain": domain,
            "confidence": confidence, "evidence": {"demo": "soma demo"},
        }, tenant=self.acme)
        return event_id

    def _cause(self, frame: Seen) -> float:
        """Send time of the predictor update a frame came from (its id is derived from the update's)."""
        from soma.contracts.ids import derive_id

        for update_id, sent in self.sent_at.items():
            if derive_id(update_id, "frame") == frame.value["event_id"]:
                return sent
        return frame.at

    def _first_frame(self, chain: Chain, step: str) -> Seen | None:
        """Send `plan` updates (same confidence, so the same state) until the integrator answers one."""
        deadline = time.monotonic() + self.hop_timeout_s
        while time.monotonic() < deadline:
            self._update("plan", 5.0)
            seen = self.observer.wait(lambda s: s.topic == "cog.global_frame" and s.tenant == self.acme, 1.0)
            if seen is not None:
                self.add(Hop(step, "integrator emitted a frame", "cog.global_frame", self.acme,
                             f"seq={seen.value['frame_seq']} leader={seen.value['leader']} {seen.position}",
                             seen.at - self._cause(seen)))
                return seen
        chain.broken = True
        self.add(Hop(step, "integrator emitted a frame", "cog.global_frame", self.acme, status=MISSED,
                     note=f"none within {self.hop_timeout_s:.0f}s: is ENABLE_COG_THREADS on for {self.acme}? "
                          f"(soma config show --tenant {self.acme})"))
        return None

    def _frame_fields(self, s: Seen) -> str:
        weights = s.value["weights"]
        return (f"seq={s.value['frame_seq']} {s.value.get('previous_leader')} -> {s.value['leader']} "
                f"(w={weights.get(s.value['leader'], 0):.2f})")

    def cog(self, chain: Chain) -> None:
        step = "cog: leaders + segments"
        if chain.broken:
            self.add(Hop(step, "predictor updates", "cog.predictor_updates", self.acme, status=SKIPPED,
                         note="ENABLE_COG_THREADS was not switched on"))
            return
        if self._first_frame(chain, step) is None:
            return
        ids = [self._update(domain, confidence) for domain, confidence in COG_SEQUENCE]
        self.add(Hop(step, f"{len(ids)} predictor updates sent (plan, act, recall)", "cog.predictor_updates",
                     self.acme, "straight to Kafka (soma.events)", None))
        for before, after in (("plan", "act"), ("act", "recall")):
            frame = self.observer.wait(
                lambda s, b=before, a=after: s.topic == "cog.global_frame" and s.tenant == self.acme  # type: ignore[misc]
                and s.value["leader"] == a and s.value.get("previous_leader") == b, self.hop_timeout_s)
            if frame is None:
                chain.broken = True
                self.add(Hop(step, f"leader change {before} -> {after}", "cog.global_frame", self.acme,
                             status=MISSED, note=f"not seen within {self.hop_timeout_s:.0f}s"))
                continue
            self.add(Hop(step, f"leader change {before} -> {after}", "cog.global_frame", self.acme,
                         f"{self._frame_fields(frame)} {frame.position}", frame.at - self._cause(frame)))
        last_frame = self.observer.wait(
            lambda s: s.topic == "cog.global_frame" and s.tenant == self.acme and
            s.value["event_id"] == _derive(ids[-1], "frame"), 0 if chain.broken else self.hop_timeout_s)

        def cached() -> tuple[str, float] | None:
            from redis import RedisError

            from soma.errors import InfrastructureUnavailable

            try:
                raw = self.redis.get(f"global_frame:{self.acme}")
            except RedisError as exc:
                raise InfrastructureUnavailable(f"redis: {exc} ({env_name('redis_url')})") from None
            if raw is None or last_frame is None:
                return None
            frame = json.loads(raw)
            if frame.get("event_id") != last_frame.value["event_id"]:
                return None
            ttl = self.redis.ttl(f"global_frame:{self.acme}")
            return f"leader={frame['leader']} seq={frame['frame_seq']} ttl={ttl}s", time.time()

        redis_chain = Chain(broken=last_frame is None)
        self.poll(redis_chain, step, "integrator cached the latest frame", f"redis global_frame:{self.acme}",
                  self.acme, cached, self.sent_at[ids[-1]])
        for after in ("act", "recall"):
            segment = self.observer.wait(
                lambda s, a=after: s.topic == "cog.segments" and s.tenant == self.acme  # type: ignore[misc]
                and s.value["leader_after"] == a, self.hop_timeout_s)
            if segment is None:
                self.add(Hop(step, f"segment closed (new leader {after})", "cog.segments", self.acme,
                             status=MISSED, note=f"not seen within {self.hop_timeout_s:.0f}s"))
                continue
            v = segment.value
            frame = next(iter(self.observer.matching(
                lambda s, sid=v["event_id"]: s.topic == "cog.global_frame"  # type: ignore[misc]
                and _derive(s.value["event_id"], "segment:0") == sid)), None)
            since = self._cause(frame) if frame is not None else segment.at
            self.add(Hop(step, f"segment closed (new leader {after})", "cog.segments", self.acme,
                         f"{v['boundary_kind']} {v['leader_before']} -> {v['leader_after']} "
                         f"frames {v['start_frame_seq']}..{v['end_frame_seq']} {segment.position}",
                         segment.at - since))

    def live_config(self, cog: Chain) -> None:
        step = "live config"
        chain = Chain(broken=cog.broken)
        if chain.broken:
            self.add(Hop(step, f"INTEGRATOR_TEMPERATURE={DEMO_TEMPERATURE}", "config_updates", self.acme,
                         status=SKIPPED, note="needs the cog hops"))
            return
        started = self.config(step, chain, "INTEGRATOR_TEMPERATURE", DEMO_TEMPERATURE, self.acme)
        wanted = float(DEMO_TEMPERATURE)
        deadline = time.monotonic() + self.hop_timeout_s
        while not chain.broken and time.monotonic() < deadline:
            self._update("recall", 500.0)  # the same state; the next frame shows the temperature in effect
            frame = self.observer.wait(
                lambda s: s.topic == "cog.global_frame" and s.tenant == self.acme
                and abs(float(s.value["temperature"]) - wanted) < 1e-9, 0.5)
            if frame is not None:
                self.add(Hop(step, "integrator applied it to the next frame", "cog.global_frame", self.acme,
                             f"seq={frame.value['frame_seq']} temperature={frame.value['temperature']} "
                             f"entropy={frame.value['entropy']:.3f} {frame.position}", frame.at - started))
                return
        self.add(Hop(step, "integrator applied it to the next frame", "cog.global_frame", self.acme,
                     status=SKIPPED if chain.broken else MISSED,
                     note="after a missed hop" if chain.broken else f"not seen within {self.hop_timeout_s:.0f}s"))


def _derive(event_id: str, slot: str) -> str:
    from soma.contracts.ids import derive_id

    return derive_id(event_id, slot)
