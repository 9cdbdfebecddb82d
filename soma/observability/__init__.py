"""Observability: structured logs, traces, metrics, health and readiness."""
