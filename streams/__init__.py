"""Faust stream processors: one module per stream, each run as `faust -A streams.<name> worker`.

A stream module only wires its agent: `streams.app.StreamApp` configures the Faust app from the
settings; `streams.runtime` holds what every stream does at run time, one concern a module
(records and DLQ, emit, state, config mirror, health, tracing, the `run_batches` agent loop);
`streams.logic` the pure decision functions, `decide(state, input) -> (new state, outputs)`.
"""
