"""The SQLite store: audit events, what the local sink received, held originals (encrypted), feedback, idempotency.

One aiosqlite connection does every write (datasette's execute_write_fn), in WAL mode so readers never block it.
The whole schema is the SQL below. Held originals are AES-GCM ciphertext bound to their row id; nothing here
ever writes a plaintext original.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from slack_pii.store.audit import AuditEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_events (
    id             INTEGER PRIMARY KEY,
    created        REAL    NOT NULL,            -- unix seconds
    name           TEXT    NOT NULL,            -- AuditEvent.name
    source         TEXT,                        -- webapi | webhook | bolt ...
    method         TEXT,                        -- Web API method, or "webhook"
    channel        TEXT,                        -- channel id (never a name typed by a user)
    caller         TEXT,                        -- keyed fingerprint of the caller's token
    action         TEXT,                        -- allow | warn | redact | block | forward
    entities       TEXT    NOT NULL DEFAULT '{}',  -- JSON {entity_type: count}
    rules          TEXT    NOT NULL DEFAULT '[]',  -- JSON [rule id]
    latency_ms     REAL,
    status         INTEGER,                     -- HTTP status the caller got
    config_version TEXT,
    detail         TEXT    NOT NULL DEFAULT '{}'   -- JSON: the event's other (shape-only) fields
);
CREATE INDEX IF NOT EXISTS audit_events_created ON audit_events (created);

-- What Slack would have received, when the upstream is the built-in local sink (already redacted).
CREATE TABLE IF NOT EXISTS sink_messages (
    id       INTEGER PRIMARY KEY,
    created  REAL NOT NULL,
    method   TEXT NOT NULL,
    channel  TEXT,
    ts       TEXT,
    caller   TEXT,
    payload  TEXT NOT NULL                      -- JSON of the arguments as received
);

-- Originals waiting for the sender's decision: AES-GCM with the row id as associated data.
CREATE TABLE IF NOT EXISTS held_messages (
    id         TEXT PRIMARY KEY,
    user       TEXT,
    channel    TEXT,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    meta       TEXT NOT NULL DEFAULT '{}',      -- JSON, non-sensitive (thread_ts, response_url ...)
    created    REAL NOT NULL,
    expires    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS held_messages_expires ON held_messages (expires);

-- False-positive reports ("Not sensitive"): keyed fingerprints, never values.
CREATE TABLE IF NOT EXISTS feedback (
    id          INTEGER PRIMARY KEY,
    rule_id     TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    reporter    TEXT,
    created     REAL NOT NULL
);

-- Allow-list entries made from feedback (`slack-pii feedback allow`): fingerprints only, read by running proxies.
CREATE TABLE IF NOT EXISTS allow_fingerprints (
    fingerprint TEXT PRIMARY KEY,
    rule_id     TEXT,                           -- the rule the reports were about (for the record)
    entity_type TEXT,
    added_by    TEXT,
    created     REAL NOT NULL
);

-- Idempotency keys (Slack event ids, retried deliveries).
CREATE TABLE IF NOT EXISTS processed_events (
    key     TEXT PRIMARY KEY,
    created REAL NOT NULL
);

-- Users' own tokens (xoxp-, from the app's OAuth), so "Redact my message" can edit as them: AES-GCM, user id as AD.
CREATE TABLE IF NOT EXISTS user_tokens (
    user       TEXT PRIMARY KEY,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created    REAL NOT NULL
);
"""

Clock = Callable[[], float]


@dataclass(frozen=True)
class HeldMessage:
    """A held original, decrypted: only ever in memory."""

    id: str
    user: str | None
    channel: str | None
    text: str
    meta: dict
    created: float
    expires: float


class Store:
    """The one connection to the database; open with `await Store.open(...)`, close with `await store.close()`."""

    def __init__(self, conn: aiosqlite.Connection, key: bytes, clock: Clock = time.time,
                 hold_ttl_seconds: int = 900):
        self._conn = conn
        self._aead = AESGCM(key[:32])
        self._clock = clock
        self._write_lock = asyncio.Lock()
        self.hold_ttl_seconds = hold_ttl_seconds

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
        await conn.executescript(SCHEMA)
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

    async def _write(self, sql: str, params: tuple | dict = ()) -> aiosqlite.Cursor:
        async with self._write_lock:
            return await self._conn.execute(sql, params)

    async def _rows(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        async with self._conn.execute(sql, params) as cursor:
            return [dict(row) for row in await cursor.fetchall()]

    # --- audit ---------------------------------------------------------------------------------------------

    async def record(self, event: AuditEvent) -> None:
        record = event.to_record()
        await self._write(
            "INSERT INTO audit_events (created, name, source, method, channel, caller, action, entities, rules,"
            " latency_ms, status, config_version, detail) VALUES (:created, :name, :source, :method, :channel,"
            " :caller, :action, :entities, :rules, :latency_ms, :status, :config_version, :detail)",
            {**record, "created": self._clock(), "entities": json.dumps(record["entities"] or {}),
             "rules": json.dumps(record["rules"] or []), "detail": json.dumps(record["detail"])})

    async def audit_events(self, since: float | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest last; JSON columns decoded."""
        sql = "SELECT * FROM audit_events WHERE created >= ? ORDER BY id DESC"
        params: list[Any] = [since or 0]
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        rows = await self._rows(sql, tuple(params))
        for row in rows:
            for column in ("entities", "rules", "detail"):
                row[column] = json.loads(row[column])
        return rows[::-1]

    # --- local sink -----------------------------------------------------------------------------------------

    async def record_sink_message(self, method: str, channel: str | None, ts: str | None, caller: str | None,
                                  payload: dict) -> None:
        await self._write(
            "INSERT INTO sink_messages (created, method, channel, ts, caller, payload) VALUES (?, ?, ?, ?, ?, ?)",
            (self._clock(), method, channel, ts, caller, json.dumps(payload, ensure_ascii=False)))

    async def sink_messages(self, limit: int | None = None) -> list[dict[str, Any]]:
        rows = await self._rows("SELECT * FROM sink_messages ORDER BY id DESC" + (" LIMIT ?" if limit else ""),
                                (limit,) if limit else ())
        for row in rows:
            row["payload"] = json.loads(row["payload"])
        return rows[::-1]

    # --- held messages --------------------------------------------------------------------------------------

    async def hold(self, original_text: str, *, user: str | None = None, channel: str | None = None,
                   meta: dict | None = None, ttl_seconds: float | None = None) -> str:
        """Encrypt and keep an original until `take` or expiry; returns its id."""
        held_id = secrets.token_urlsafe(16)
        nonce = os.urandom(12)
        ciphertext = self._aead.encrypt(nonce, original_text.encode("utf-8", "surrogatepass"), held_id.encode())
        now = self._clock()
        ttl = self.hold_ttl_seconds if ttl_seconds is None else ttl_seconds
        await self._write(
            "INSERT INTO held_messages (id, user, channel, nonce, ciphertext, meta, created, expires)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (held_id, user, channel, nonce, ciphertext, json.dumps(meta or {}), now, now + ttl))
        return held_id

    async def peek(self, held_id: str) -> HeldMessage | None:
        """The held original (decrypted) without consuming it; None when unknown or expired."""
        rows = await self._rows("SELECT * FROM held_messages WHERE id = ? AND expires > ?", (held_id, self._clock()))
        if not rows:
            return None
        row = rows[0]
        try:
            text = self._aead.decrypt(row["nonce"], row["ciphertext"], held_id.encode()).decode("utf-8",
                                                                                                 "surrogatepass")
        except InvalidTag:  # a different key, or a tampered row: unreadable is the same as gone
            return None
        return HeldMessage(held_id, row["user"], row["channel"], text, json.loads(row["meta"]), row["created"],
                           row["expires"])

    async def take(self, held_id: str) -> str | None:
        """The plaintext original, once: the row is erased whether or not it had expired."""
        async with self._write_lock:
            held = await self.peek(held_id)
            await self._conn.execute("DELETE FROM held_messages WHERE id = ?", (held_id,))
        return held.text if held else None

    async def take_held(self, held_id: str) -> HeldMessage | None:
        """Like `take`, with the row's user, channel and meta."""
        async with self._write_lock:
            held = await self.peek(held_id)
            await self._conn.execute("DELETE FROM held_messages WHERE id = ?", (held_id,))
        return held

    async def purge_expired(self, now: float | None = None) -> int:
        cursor = await self._write("DELETE FROM held_messages WHERE expires <= ?",
                                   (self._clock() if now is None else now,))
        return cursor.rowcount

    async def count_held(self) -> int:
        rows = await self._rows("SELECT count(*) AS n FROM held_messages WHERE expires > ?", (self._clock(),))
        return rows[0]["n"]

    # --- feedback and idempotency ---------------------------------------------------------------------------

    async def record_feedback(self, rule_id: str, entity_type: str, fingerprint: str,
                              reporter: str | None = None) -> None:
        await self._write(
            "INSERT INTO feedback (rule_id, entity_type, fingerprint, reporter, created) VALUES (?, ?, ?, ?, ?)",
            (rule_id, entity_type, fingerprint, reporter, self._clock()))

    async def feedback(self) -> list[dict[str, Any]]:
        return await self._rows("SELECT * FROM feedback ORDER BY id")

    async def feedback_by_rule(self) -> list[dict[str, Any]]:
        """Reports grouped by rule and entity: counts, distinct fingerprints, how many are now allow-listed."""
        return await self._rows(
            "SELECT f.rule_id, f.entity_type, count(*) AS reports, count(DISTINCT f.fingerprint) AS values_reported,"
            " count(DISTINCT a.fingerprint) AS allowed, max(f.created) AS last_reported"
            " FROM feedback f LEFT JOIN allow_fingerprints a ON a.fingerprint = f.fingerprint"
            " GROUP BY f.rule_id, f.entity_type ORDER BY reports DESC, f.rule_id")

    async def feedback_fingerprints(self, rule_id: str | None = None) -> list[dict[str, Any]]:
        """One row per reported fingerprint (optionally of one rule), most reported first."""
        where, params = ("WHERE f.rule_id = ?", (rule_id,)) if rule_id else ("", ())
        return await self._rows(
            "SELECT f.rule_id, f.entity_type, f.fingerprint, count(*) AS reports, max(f.created) AS last_reported,"
            " a.fingerprint IS NOT NULL AS allowed FROM feedback f"
            f" LEFT JOIN allow_fingerprints a ON a.fingerprint = f.fingerprint {where}"
            " GROUP BY f.rule_id, f.entity_type, f.fingerprint ORDER BY reports DESC, last_reported DESC", params)

    async def allow_fingerprint(self, fingerprint: str, *, rule_id: str | None = None,
                                entity_type: str | None = None, added_by: str | None = None) -> bool:
        """Allow-list a keyed fingerprint; True when it was not allow-listed yet."""
        cursor = await self._write(
            "INSERT OR IGNORE INTO allow_fingerprints (fingerprint, rule_id, entity_type, added_by, created)"
            " VALUES (?, ?, ?, ?, ?)", (fingerprint, rule_id, entity_type, added_by, self._clock()))
        return cursor.rowcount == 1

    async def allowed_fingerprints(self) -> frozenset[str]:
        rows = await self._rows("SELECT fingerprint FROM allow_fingerprints")
        return frozenset(row["fingerprint"] for row in rows)

    # --- dashboard aggregates (shape only) ------------------------------------------------------------------

    async def activity(self, since: float, bucket_seconds: int) -> list[dict[str, Any]]:
        """Findings per time bucket, entity type and action.

        Per finding (its own action) where the event carries the explain trail; per message otherwise.
        """
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
        """What exceptions let through: placeholder/allow-regex hits and findings the policy allowed, with reasons."""
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

    async def recent_decisions(self, limit: int = 12) -> list[dict[str, Any]]:
        """The latest scanned messages that were not simply allowed, with their explain trail."""
        rows = await self._rows(
            "SELECT id, created, method, channel, action, entities, rules, config_version, detail FROM audit_events"
            " WHERE name = 'message_scanned' AND action IN ('warn', 'redact', 'block') ORDER BY created DESC LIMIT ?",
            (limit,))
        for row in rows:
            for column in ("entities", "rules", "detail"):
                row[column] = json.loads(row[column])
        return rows

    async def action_counts(self, since: float) -> dict[str, int]:
        """Scanned messages per action (allow, warn, redact, block, forward) since `since`."""
        rows = await self._rows("SELECT action, count(*) AS n FROM audit_events WHERE created >= ? AND action"
                                " IS NOT NULL GROUP BY action", (since,))
        return {row["action"]: row["n"] for row in rows}

    async def file_counts(self, since: float) -> dict[str, int]:
        """Scanned files per action (allow, warn, redact, block) since `since` (file_scanned events)."""
        rows = await self._rows("SELECT action, count(*) AS n FROM audit_events WHERE created >= ? AND name ="
                                " 'file_scanned' GROUP BY action", (since,))
        return {row["action"]: row["n"] for row in rows}

    async def top_rules(self, since: float, limit: int = 10) -> list[dict[str, Any]]:
        """Rules that acted most often (allowed findings excluded), split by the action each finding got.

        Per finding where the event carries the explain trail; per message (its verdict) otherwise.
        """
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

    async def held_pending(self) -> list[dict[str, Any]]:
        """Held originals awaiting a decision: ids, channels and times only (never the ciphertext)."""
        return await self._rows("SELECT id, user, channel, created, expires FROM held_messages WHERE expires > ?"
                                " ORDER BY created DESC", (self._clock(),))

    async def mark_processed(self, key: str) -> bool:
        """True the first time `key` is seen, False for a repeat (a retried delivery)."""
        cursor = await self._write("INSERT OR IGNORE INTO processed_events (key, created) VALUES (?, ?)",
                                   (key, self._clock()))
        return cursor.rowcount == 1

    async def purge_processed(self, older_than: float) -> int:
        cursor = await self._write("DELETE FROM processed_events WHERE created < ?", (older_than,))
        return cursor.rowcount

    # --- users' own tokens ------------------------------------------------------------------------------------

    async def save_user_token(self, user: str, token: str) -> None:
        """Keep (encrypted) the token a user granted the app, replacing an older one."""
        nonce = os.urandom(12)
        ciphertext = self._aead.encrypt(nonce, token.encode(), b"user:" + user.encode())
        await self._write("INSERT OR REPLACE INTO user_tokens (user, nonce, ciphertext, created) VALUES (?, ?, ?, ?)",
                          (user, nonce, ciphertext, self._clock()))

    async def user_token(self, user: str) -> str | None:
        """The user's own token, or None when they never authorised the app (or the key changed)."""
        rows = await self._rows("SELECT nonce, ciphertext FROM user_tokens WHERE user = ?", (user,))
        if not rows:
            return None
        try:
            return self._aead.decrypt(rows[0]["nonce"], rows[0]["ciphertext"], b"user:" + user.encode()).decode()
        except InvalidTag:
            return None
