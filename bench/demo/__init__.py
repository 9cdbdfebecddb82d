"""`soma demo`: the scenario: drive a short, realistic run through the running platform and watch each hop.

Two fresh tenants (`demo-acme-<run>`, `demo-globex-<run>`):

1. chat: acme's user message asks for a tool (`calc`); globex's does not. Both are written
   through the outbox writer (one transaction each), so the relay publishes them; then
   chat.messages -> tool.requests -> tool.results -> the role=tool chat message -> memory.writes
   -> rows of `memory_replica` in PostgreSQL.
2. cog: predictor updates for three domains (plan, act, recall) straight to Kafka, so the
   leader changes twice -> cog.global_frame, the Redis key `global_frame:{tenant}`, and two
   leader_change segments on cog.segments (a new leader held for SEGMENTER_DWELL_FRAMES frames).
   ENABLE_COG_THREADS (off by default) is switched on for acme only, with a tenant-scoped update.
3. live config: INTEGRATOR_TEMPERATURE for acme (tenant-scoped) -> the next frame carries it.
4. sleep: ENABLE_SLEEP (off by default) switched on for acme (tenant-scoped), then deep for a few
   seconds with PUT /admin/brain/sleep_mode -> cog.sleep_requests (outbox, relay) -> the integrator's
   transition on cog.sleep and in Redis `sleep:{tenant}` -> its TTL wake (awake, ttl_wake) on cog.sleep.
5. replay: globex's outbox row replayed through the admin HTTP API -> the relay publishes the
   copy (`replay-of` header) -> the AdminAudit event; the worker drops the duplicate (same id).

Every wait is bounded by `hop_timeout_s`; a hop that does not happen in time is reported as
missed and the hops that depend on it are skipped (not waited for).

Modules: `scenario` (the tenants, chat and replay steps), `cog` (leaders, segments, live config),
`sleep` (the sleep cycle), `recorder` (hops and bounded waits), `observe` (the topic reader), `hops`
(the table), `endpoints` (where the processes answer).
"""
