"""The SQLite store (the default): one file in data_dir, one process.

One aiosqlite connection does every write (datasette's execute_write_fn), in WAL mode so readers never block it.
The schema is the numbered files in migrations/sqlite/. Held originals are AES-GCM ciphertext bound to their row
id; nothing here ever writes a plaintext original.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiosqlite

from slack_pii.store.base import BaseStore, Clock, HeldMessage, migrations

__all__ = ["Store", "HeldMessage"]


class Store(BaseStore):
    """The one connection to the database; open with `await Store.open(...)`, close with `await store.close()`."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, key: bytes, clock: Clock = time.time,
                 hold_ttl_seconds: int = 900):
        super().__init__(key, clock, hold_ttl_seconds)
        self._conn = conn
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str, key: bytes, *, clock: Clock = time.time,
                   hold_ttl_seconds: int = 900) -> Store:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        # NOTE: secure_delete zeroes freed pages, so a taken or purged ciphertext does not linger in the file.
        await conn.execute("PRAGMA secure_delete=ON")
        await conn.execute("PRAGMA busy_timeout=5000")  # `feedback allow` and `store migrate` write alongside serve
        await migrate(conn)
        try:
            os.chmod(path, 0o600)
        except OSError:  # pragma: no cover - e.g. a read-only mount; not worth failing start-up for
            pass
        return cls(conn, key, clock, hold_ttl_seconds)

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await conn.close()

    async def ping(self) -> bool:
        return self._conn is not None

    async def _write(self, sql: str, params: tuple | dict = ()) -> int:
        async with self._write_lock:
            cursor = await self._conn.execute(sql, params)
            return cursor.rowcount

    async def _returning(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        async with self._write_lock:
            async with self._conn.execute(sql, params) as cursor:
                return [dict(row) for row in await cursor.fetchall()]

    async def _rows(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        async with self._conn.execute(sql, params) as cursor:
            return [dict(row) for row in await cursor.fetchall()]

    # --- dashboard aggregates (SQLite's JSON functions) -----------------------------------------------------

    async def activity(self, since: float, bucket_seconds: int) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT CAST(e.created / :bucket AS INTEGER) * :bucket AS bucket,"
            " json_extract(j.value, '$.action') AS action, json_extract(j.value, '$.entity_type') AS entity_type,"
            " count(*) AS findings FROM audit_events e, json_each(e.detail, '$.findings') j"
            " WHERE e.created >= :since GROUP BY bucket, action, entity_type"
            " UNION ALL"
            " SELECT CAST(e.created / :bucket AS INTEGER) * :bucket AS bucket, e.action AS action,"
            " j.key AS entity_type, sum(j.value) AS findings FROM audit_events e, json_each(e.entities) j"
            " WHERE e.created >= :since AND json_type(e.detail, '$.findings') IS NULL"
            " GROUP BY bucket, e.action, j.key ORDER BY bucket",
            {"since": since, "bucket": bucket_seconds})

    async def allow_hits(self, since: float) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT json_extract(j.value, '$.rule') AS rule_id, json_extract(j.value, '$.entity_type') AS entity_type,"
            " json_extract(j.value, '$.reason') AS reason, count(*) AS hits"
            " FROM audit_events e, json_each(e.detail, '$.suppressed') j WHERE e.created >= :since"
            " GROUP BY rule_id, entity_type, reason"
            " UNION ALL"
            " SELECT json_extract(j.value, '$.rule'), json_extract(j.value, '$.entity_type'),"
            " json_extract(j.value, '$.reason'), count(*)"
            " FROM audit_events e, json_each(e.detail, '$.findings') j"
            " WHERE e.created >= :since AND json_extract(j.value, '$.action') = 'allow'"
            " GROUP BY 1, 2, 3", {"since": since})

    async def top_rules(self, since: float, limit: int = 10) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT rule_id, sum(n) AS findings, sum(blocked) AS blocked, sum(redacted) AS redacted,"
            " sum(warned) AS warned FROM ("
            " SELECT json_extract(j.value, '$.rule') AS rule_id, count(*) AS n,"
            " sum(json_extract(j.value, '$.action') = 'block') AS blocked,"
            " sum(json_extract(j.value, '$.action') = 'redact') AS redacted,"
            " sum(json_extract(j.value, '$.action') = 'warn') AS warned"
            " FROM audit_events e, json_each(e.detail, '$.findings') j"
            " WHERE e.created >= :since AND json_extract(j.value, '$.action') != 'allow' GROUP BY 1"
            " UNION ALL"
            " SELECT j.value, count(*), sum(e.action = 'block'), sum(e.action = 'redact'), sum(e.action = 'warn')"
            " FROM audit_events e, json_each(e.rules) j"
            " WHERE e.created >= :since AND json_type(e.detail, '$.findings') IS NULL GROUP BY 1"
            ") GROUP BY rule_id ORDER BY findings DESC, rule_id LIMIT :limit", {"since": since, "limit": limit})


async def migrate(conn: aiosqlite.Connection) -> list[int]:
    """Apply the numbered migrations this file has not had yet, each in one transaction; the versions applied.

    NOTE: BEGIN IMMEDIATE takes SQLite's write lock first, so two processes opening one file migrate once.
    """
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                       " applied REAL NOT NULL)")
    applied = []
    for migration in migrations("sqlite"):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            async with conn.execute("SELECT 1 FROM schema_version WHERE version = ?", (migration.version,)) as cur:
                done = await cur.fetchone()
            if not done:
                for statement in _statements(migration.sql):
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_version (version, name, applied) VALUES (?, ?, ?)",
                                   (migration.version, migration.name, time.time()))
                applied.append(migration.version)
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
    return applied


def _statements(sql: str) -> list[str]:
    """executescript would COMMIT our transaction; the migration files hold plain statements split on ';'."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
