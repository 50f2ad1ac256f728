"""The PostgreSQL store: the same operations as SQLite, shared by every replica of the proxy and the Slack app.

psycopg 3 (async) with a psycopg_pool pool in autocommit: each operation is one statement, so the database's
own guarantees make it safe across processes (a primary key for idempotency, DELETE ... RETURNING for taking a
held message). Connection failures become `StoreUnavailable`; the pool checks a connection before lending it,
so after a database restart the next request gets a fresh one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from slack_pii import messages
from slack_pii.store.base import BaseStore, Clock, StoreUnavailable, migrations

log = logging.getLogger("slack_pii.store")

# NOTE: pg_advisory_lock keys are one bigint namespace per database; these are ours (ASCII "SPII" + a purpose).
MIGRATE_LOCK = 0x53504949_0001
PURGE_LOCK = 0x53504949_0002
ALLOW_CHANNEL = "slack_pii_allow_list"
LISTEN_RETRY_SECONDS = 1.0


class PostgresStore(BaseStore):
    """A pool of connections to one database; open with `await PostgresStore.open(url, key, ...)`."""

    dialect = "postgresql"

    def __init__(self, pool: AsyncConnectionPool, url: str, key: bytes, clock: Clock, hold_ttl_seconds: int,
                 timeout_seconds: float):
        super().__init__(key, clock, hold_ttl_seconds)
        self._pool: AsyncConnectionPool | None = pool
        self._url = url
        self._timeout = timeout_seconds
        self._listener: asyncio.Task | None = None

    @classmethod
    async def open(cls, url: str, key: bytes, *, clock: Clock = time.time, hold_ttl_seconds: int = 900,
                   pool_size: int = 10, timeout_seconds: float = 5.0) -> PostgresStore:
        """Connect, migrate (once, under an advisory lock, however many replicas start together) and pool."""
        connect = {"autocommit": True, "row_factory": dict_row, "connect_timeout": max(1, int(timeout_seconds))}
        try:
            async with await psycopg.AsyncConnection.connect(url, **connect) as conn:
                await migrate(conn)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailable(messages.store_unreachable(type(exc).__name__)) from None
        # NOTE: `check` costs a round trip per checkout, but after a database restart or failover no request
        # gets a dead pooled connection (and a spurious pii_store_unavailable); see bench/store_bench.py.
        pool = AsyncConnectionPool(url, min_size=1, max_size=max(1, pool_size), kwargs=connect, open=False,
                                   timeout=timeout_seconds, check=AsyncConnectionPool.check_connection,
                                   name="slack-pii")
        await pool.open(wait=True, timeout=timeout_seconds)
        return cls(pool, url, key, clock, hold_ttl_seconds, timeout_seconds)

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def ping(self) -> bool:
        try:
            await self._rows("SELECT 1 AS ok")
            return True
        except StoreUnavailable:
            return False

    # --- the three primitives -------------------------------------------------------------------------------

    async def _execute(self, sql: str, params: tuple | dict, fetch: bool) -> tuple[int, list[dict[str, Any]]]:
        if isinstance(params, tuple):
            sql = sql.replace("?", "%s")
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(sql, params or None)
                rows = await cursor.fetchall() if fetch else []
                return cursor.rowcount, rows
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            # NOTE: only the class name: a libpq message can quote the connection string.
            log.warning(messages.store_failed(type(exc).__name__))
            raise StoreUnavailable(messages.store_unreachable(type(exc).__name__)) from None

    async def _write(self, sql: str, params: tuple = ()) -> int:
        return (await self._execute(sql, params, fetch=False))[0]

    async def _rows(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        return (await self._execute(sql, params, fetch=True))[1]

    async def _returning(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        return (await self._execute(sql, params, fetch=True))[1]

    # --- across replicas -------------------------------------------------------------------------------------

    async def purge_expired(self, now: float | None = None) -> int:
        """Delete expired originals, one replica at a time: a replica that finds the purge lock taken skips."""
        cutoff = self._clock() if now is None else now
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cursor = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS got", (PURGE_LOCK,))
                if not (await cursor.fetchone())["got"]:  # another replica is purging right now
                    return 0
                cursor = await conn.execute("DELETE FROM held_messages WHERE expires <= %s", (cutoff,))
                return cursor.rowcount
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise StoreUnavailable(messages.store_unreachable(type(exc).__name__)) from None

    async def _notify_allow_list(self) -> None:
        await self._write(f"NOTIFY {ALLOW_CHANNEL}")

    async def listen_allow_list(self, changed: Callable[[], Awaitable[Any]]) -> None:
        """LISTEN on a connection of its own; `changed` runs on each NOTIFY. Reconnects after a failure; the
        proxy's allow-list poll covers whatever was missed meanwhile."""
        self._listener = asyncio.create_task(self._listen(changed))

    async def _listen(self, changed: Callable[[], Awaitable[Any]]) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self._url, autocommit=True, connect_timeout=max(1, int(self._timeout))) as conn:
                    await conn.execute(f"LISTEN {ALLOW_CHANNEL}")
                    await changed()  # whatever changed while we were not listening
                    async for _ in conn.notifies():
                        await changed()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: wait and listen again; polling still works
                log.warning(messages.store_failed(type(exc).__name__))
            await asyncio.sleep(LISTEN_RETRY_SECONDS)

    # --- dashboard aggregates (jsonb) -------------------------------------------------------------------------

    async def activity(self, since: float, bucket_seconds: int) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT (floor(e.created / %(bucket)s) * %(bucket)s)::bigint AS bucket, j.value->>'action' AS action,"
            " j.value->>'entity_type' AS entity_type, count(*) AS findings FROM audit_events e,"
            " jsonb_array_elements(coalesce(e.detail::jsonb->'findings', '[]'::jsonb)) j"
            " WHERE e.created >= %(since)s GROUP BY 1, 2, 3"
            " UNION ALL"
            " SELECT (floor(e.created / %(bucket)s) * %(bucket)s)::bigint, e.action, j.key,"
            " sum((j.value #>> '{}')::bigint)::bigint FROM audit_events e, jsonb_each(e.entities::jsonb) j"
            " WHERE e.created >= %(since)s AND e.detail::jsonb->'findings' IS NULL"
            " GROUP BY 1, 2, 3 ORDER BY bucket", {"since": since, "bucket": bucket_seconds})

    async def allow_hits(self, since: float) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT j.value->>'rule' AS rule_id, j.value->>'entity_type' AS entity_type,"
            " j.value->>'reason' AS reason, count(*) AS hits FROM audit_events e,"
            " jsonb_array_elements(coalesce(e.detail::jsonb->'suppressed', '[]'::jsonb)) j"
            " WHERE e.created >= %(since)s GROUP BY 1, 2, 3"
            " UNION ALL"
            " SELECT j.value->>'rule', j.value->>'entity_type', j.value->>'reason', count(*) FROM audit_events e,"
            " jsonb_array_elements(coalesce(e.detail::jsonb->'findings', '[]'::jsonb)) j"
            " WHERE e.created >= %(since)s AND j.value->>'action' = 'allow' GROUP BY 1, 2, 3", {"since": since})

    async def top_rules(self, since: float, limit: int = 10) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT rule_id, sum(n)::bigint AS findings, sum(blocked)::bigint AS blocked,"
            " sum(redacted)::bigint AS redacted, sum(warned)::bigint AS warned FROM ("
            " SELECT j.value->>'rule' AS rule_id, count(*) AS n,"
            " count(*) FILTER (WHERE j.value->>'action' = 'block') AS blocked,"
            " count(*) FILTER (WHERE j.value->>'action' = 'redact') AS redacted,"
            " count(*) FILTER (WHERE j.value->>'action' = 'warn') AS warned FROM audit_events e,"
            " jsonb_array_elements(coalesce(e.detail::jsonb->'findings', '[]'::jsonb)) j"
            " WHERE e.created >= %(since)s AND j.value->>'action' != 'allow' GROUP BY 1"
            " UNION ALL"
            " SELECT j.value #>> '{}', count(*), count(*) FILTER (WHERE e.action = 'block'),"
            " count(*) FILTER (WHERE e.action = 'redact'), count(*) FILTER (WHERE e.action = 'warn')"
            " FROM audit_events e, jsonb_array_elements(e.rules::jsonb) j"
            " WHERE e.created >= %(since)s AND e.detail::jsonb->'findings' IS NULL GROUP BY 1"
            ") t GROUP BY rule_id ORDER BY findings DESC, rule_id LIMIT %(limit)s", {"since": since, "limit": limit})


async def migrate(conn: psycopg.AsyncConnection) -> list[int]:
    """Apply the numbered migrations the database has not had yet; the versions applied (empty when another
    replica got there first). NOTE: pg_advisory_lock makes N replicas starting at once wait for one migrator,
    then each finds the versions recorded and applies nothing."""
    applied = []
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                           " name TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)")
        done = {row["version"] for row in await (await conn.execute("SELECT version FROM schema_version")).fetchall()}
        for migration in migrations("postgresql"):
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute("INSERT INTO schema_version (version, name, applied) VALUES (%s, %s, %s)",
                                   (migration.version, migration.name, time.time()))
            applied.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
    if applied:
        log.info(messages.store_migrated("postgresql", applied))
    return applied
