"""The top layer: benchmarks (each against a baseline measured in the same run) and the demo.

Its commands (`soma demo`, `soma bench ...`) live in bench/cli.py; soma's command table names
them as strings, so nothing below imports this package.
"""
