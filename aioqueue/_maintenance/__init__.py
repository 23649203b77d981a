"""Periodic, idempotent services safe to run on every worker at once."""
