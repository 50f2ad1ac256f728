"""The store: SQLite (one process, the default) or PostgreSQL (SLACK_PII_DATABASE_URL, shared by replicas),
behind one interface (`BaseStore`). `open_store(settings)` picks the backend."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from slack_pii import messages
from slack_pii.errors import ConfigError, ConfigProblem
from slack_pii.store.base import BaseStore, Clock, HeldMessage, StoreUnavailable

__all__ = ["BaseStore", "HeldMessage", "StoreUnavailable", "open_store", "open_url", "check_url"]

POSTGRES_SCHEMES = ("postgresql", "postgres")


def check_url(url: str) -> str:
    """The dialect of a store URL ('sqlite' or 'postgresql'); a ConfigError naming the setting and the fix
    otherwise."""
    scheme = urlsplit(url).scheme
    if scheme in POSTGRES_SCHEMES:
        return "postgresql"
    if scheme == "sqlite":
        return "sqlite"
    raise ConfigError([ConfigProblem("SLACK_PII_DATABASE_URL", None, messages.store_url_invalid(scheme))])


async def open_url(url: str, key: bytes, *, clock: Clock = time.time, hold_ttl_seconds: int = 900,
                   pool_size: int = 10, timeout_seconds: float = 5.0) -> BaseStore:
    """`sqlite:///relative/file.sqlite3`, `sqlite:////absolute/file.sqlite3` (SQLAlchemy's convention) or
    `postgresql://...`."""
    if check_url(url) == "sqlite":
        from slack_pii.store.sqlite import Store

        return await Store.open(Path(urlsplit(url).path[1:]), key, clock=clock, hold_ttl_seconds=hold_ttl_seconds)
    from slack_pii.store.postgres import PostgresStore

    return await PostgresStore.open(url, key, clock=clock, hold_ttl_seconds=hold_ttl_seconds, pool_size=pool_size,
                                    timeout_seconds=timeout_seconds)


async def open_store(settings, *, clock: Clock = time.time, at_rest_key: bytes | None = None) -> BaseStore:
    """The store the settings name: PostgreSQL when SLACK_PII_DATABASE_URL is set, else the SQLite file. Its rows
    are encrypted with `at_rest_key` (default: the at-rest sub-key of the configured secret)."""
    url = settings.database_url.get_secret_value() if settings.database_url else ""
    if not url:
        url = f"sqlite:///{settings.database_path.resolve()}"
    if at_rest_key is None:
        from slack_pii.keys import keys_for

        at_rest_key = keys_for(settings).at_rest
    return await open_url(url, at_rest_key, clock=clock, hold_ttl_seconds=settings.hold_ttl_seconds,
                          pool_size=settings.database_pool_size,
                          timeout_seconds=settings.database_timeout_seconds)
