"""Faust stream processors: one module per stream, each run as `faust -A streams.<name> worker`.

`streams.app` builds the Faust app of a stream from the settings; `streams.logic` holds the
pure decision functions (unit-tested); `streams.runtime` the I/O helpers shared by streams.
"""
