"""A valid sample event for every catalog topic: soma/contracts/samples.py (the codec benchmark uses it too)."""

from soma.contracts.samples import sample

__all__ = ["sample"]
