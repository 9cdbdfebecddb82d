"""What every stream does at run time, one concern a module, combined by `streams.app.StreamApp`.

An input's path: `batches` (the agent loop: take, decode, `complete`) -> `records` (decode, dead-letter,
handle) -> the stream's logic -> `emit` (send, partition, acknowledge) -> `state` (write, changelog
awaited) -> back to `batches`, where Faust may now acknowledge the input. Beside it: `config_mirror`
(live config), `health` (web views, stall, DLQ depth, assignment), `tracing` (`process` spans),
`metrics`, `auth` (Faust's broker credentials), `opa` (leader policy), `faust_worker`.
"""
