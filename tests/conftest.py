"""Shared fixtures: the engine is built once per test session (it is built once per process in production too)."""

from __future__ import annotations

import pytest

from proxy.config import Settings
from proxy.scanner import Scanner, build_scanner

TEST_KEY = "ab" * 32


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"), secret_key=TEST_KEY)


@pytest.fixture(scope="session")
def scanner(settings) -> Scanner:
    return build_scanner(settings)


@pytest.fixture(scope="session")
def engine(scanner):
    return scanner.engine
