"""I/O helpers shared by the streams (Faust plumbing, config mirror, metrics, OPA)."""
