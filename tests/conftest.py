"""Shared fixtures: the engine is built once per test session (it is built once per process in production too)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings as hypothesis_settings

from slack_pii.config import Settings
from slack_pii.detect.scanner import Scanner, build_scanner
from slack_pii.keys import Keys

TEST_KEY = "ab" * 32
pytest_plugins = ["tests.support.postgres"]  # pg_server, pg_url, pg_cluster: a real PostgreSQL
TEST_KEYS = Keys.derive(bytes.fromhex(TEST_KEY))  # what the proxy derives from TEST_KEY

# CI replays the same examples every run (a red build must be reproducible); locally hypothesis explores freely.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"), secret_key=TEST_KEY)


@pytest.fixture(scope="session")
def scanner(settings) -> Scanner:
    return build_scanner(settings)


@pytest.fixture(scope="session")
def engine(scanner):
    return scanner.engine
