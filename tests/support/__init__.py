"""Test-only helpers that are not tests: real services started for the tests (PostgreSQL)."""
