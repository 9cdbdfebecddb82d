"""Pure decision logic of the streams: `decide(state, event) -> (new_state, outputs)`, no I/O."""
