"""Utilities handlers import: idempotency and circuit breaking, persisted in app tables."""
