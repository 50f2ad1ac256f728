"""What every store does, whatever the database: the SQL the dialects agree on, the encryption, the migrations.

A backend (sqlite.py, postgres.py) supplies `_write` (rowcount), `_rows` (dicts), `_returning` (the rows a
write returned) and the dashboard's JSON aggregates, which are the one place the dialects really differ.
Shared SQL is written with `?` placeholders (and no literal `?` or `%`); the PostgreSQL backend turns them into `%s`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from slack_pii.errors import SlackPiiError
from slack_pii.store.audit import AuditEvent

Clock = Callable[[], float]
MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class StoreUnavailable(SlackPiiError):
    """The database could not be reached (down, restarting, pool exhausted): callers fail closed."""


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


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(dialect: str) -> list[Migration]:
    """The numbered SQL files of one dialect (store/migrations/<dialect>/NNNN_name.sql), in order."""
    folder = resources.files("slack_pii.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        match = MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


class Sealer:
    """AES-GCM with associated data: a row's ciphertext opens only under its own id (or user) and our key."""

    def __init__(self, key: bytes):
        self._aead = AESGCM(key[:32])

    def seal(self, plaintext: str, bound_to: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        return nonce, self._aead.encrypt(nonce, plaintext.encode("utf-8", "surrogatepass"), bound_to)

    def open(self, nonce: bytes, ciphertext: bytes, bound_to: bytes) -> str | None:
        """None when the key differs or the row was tampered with: unreadable is the same as gone."""
        try:
            return self._aead.decrypt(bytes(nonce), bytes(ciphertext), bound_to).decode("utf-8", "surrogatepass")
        except InvalidTag:
            return None


class BaseStore:
    """The store's operations. Open a backend with `slack_pii.store.open_store(settings)`."""

    dialect = ""

    def __init__(self, key: bytes, clock: Clock, hold_ttl_seconds: int):
        self._sealer = Sealer(key)
        self._clock = clock
        self.hold_ttl_seconds = hold_ttl_seconds

    # --- what a backend supplies ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def ping(self) -> bool:
        """True when the database answers now (for /readyz)."""
        raise NotImplementedError

    async def _write(self, sql: str, params: tuple = ()) -> int:
        raise NotImplementedError

    async def _rows(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def _returning(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def listen_allow_list(self, changed: Callable[[], Awaitable[Any]]) -> None:
        """Call `changed` when another process allow-lists a fingerprint; backends without push rely on polling."""

    async def _notify_allow_list(self) -> None:
        """Tell other processes the allow-list changed (PostgreSQL: NOTIFY); a no-op where nobody listens."""

    # --- audit ---------------------------------------------------------------------------------------------

    async def record(self, event: AuditEvent) -> None:
        record = event.to_record()
        await self._write(
            "INSERT INTO audit_events (created, name, source, method, channel, caller, action, entities, rules,"
            " latency_ms, status, config_version, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self._clock(), record["name"], record["source"], record["method"], record["channel"], record["caller"],
             record["action"], json.dumps(record["entities"] or {}), json.dumps(record["rules"] or []),
             record["latency_ms"], record["status"], record["config_version"], json.dumps(record["detail"])))

    async def audit_events(self, since: float | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest last; JSON columns decoded."""
        sql = "SELECT * FROM audit_events WHERE created >= ? ORDER BY id DESC"
        params: list[Any] = [since or 0]
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        return _decoded(await self._rows(sql, tuple(params)))[::-1]

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
        nonce, ciphertext = self._sealer.seal(original_text, held_id.encode())
        now = self._clock()
        ttl = self.hold_ttl_seconds if ttl_seconds is None else ttl_seconds
        await self._write(
            'INSERT INTO held_messages (id, "user", channel, nonce, ciphertext, meta, created, expires)'
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (held_id, user, channel, nonce, ciphertext, json.dumps(meta or {}), now, now + ttl))
        return held_id

    def _held(self, row: dict[str, Any]) -> HeldMessage | None:
        text = self._sealer.open(row["nonce"], row["ciphertext"], row["id"].encode())
        if text is None:
            return None
        return HeldMessage(row["id"], row["user"], row["channel"], text, json.loads(row["meta"]), row["created"],
                           row["expires"])

    async def peek(self, held_id: str) -> HeldMessage | None:
        """The held original (decrypted) without consuming it; None when unknown or expired."""
        rows = await self._rows("SELECT * FROM held_messages WHERE id = ? AND expires > ?", (held_id, self._clock()))
        return self._held(rows[0]) if rows else None

    async def take_held(self, held_id: str) -> HeldMessage | None:
        """The held original with its user, channel and meta, once: the row is erased whether or not it had
        expired. NOTE: one DELETE ... RETURNING, so of two clicks racing on two replicas exactly one gets it."""
        rows = await self._returning("DELETE FROM held_messages WHERE id = ? RETURNING *", (held_id,))
        if not rows or rows[0]["expires"] <= self._clock():
            return None
        return self._held(rows[0])

    async def take(self, held_id: str) -> str | None:
        """Like `take_held`, the text only."""
        held = await self.take_held(held_id)
        return held.text if held else None

    async def purge_expired(self, now: float | None = None) -> int:
        return await self._write("DELETE FROM held_messages WHERE expires <= ?",
                                 (self._clock() if now is None else now,))

    async def count_held(self) -> int:
        rows = await self._rows("SELECT count(*) AS n FROM held_messages WHERE expires > ?", (self._clock(),))
        return rows[0]["n"]

    async def held_pending(self) -> list[dict[str, Any]]:
        """Held originals awaiting a decision: ids, channels and times only (never the ciphertext)."""
        return await self._rows('SELECT id, "user", channel, created, expires FROM held_messages WHERE expires > ?'
                                " ORDER BY created DESC", (self._clock(),))

    # --- feedback and allow-lists ---------------------------------------------------------------------------

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
            " CASE WHEN a.fingerprint IS NULL THEN 0 ELSE 1 END AS allowed FROM feedback f"
            f" LEFT JOIN allow_fingerprints a ON a.fingerprint = f.fingerprint {where}"
            " GROUP BY f.rule_id, f.entity_type, f.fingerprint, a.fingerprint"
            " ORDER BY reports DESC, last_reported DESC", params)

    async def allow_fingerprint(self, fingerprint: str, *, rule_id: str | None = None,
                                entity_type: str | None = None, added_by: str | None = None) -> bool:
        """Allow-list a keyed fingerprint; True when it was not allow-listed yet."""
        added = await self._write(
            "INSERT INTO allow_fingerprints (fingerprint, rule_id, entity_type, added_by, created)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (fingerprint, rule_id, entity_type, added_by, self._clock())) == 1
        if added:
            await self._notify_allow_list()
        return added

    async def allowed_fingerprints(self) -> frozenset[str]:
        rows = await self._rows("SELECT fingerprint FROM allow_fingerprints")
        return frozenset(row["fingerprint"] for row in rows)

    # --- dashboard aggregates (shape only; the JSON ones are per dialect) -----------------------------------

    async def activity(self, since: float, bucket_seconds: int) -> list[dict[str, Any]]:
        """Findings per time bucket, entity type and action.

        Per finding (its own action) where the event carries the explain trail; per message otherwise.
        """
        raise NotImplementedError

    async def allow_hits(self, since: float) -> list[dict[str, Any]]:
        """What exceptions let through: placeholder/allow-regex hits and findings the policy allowed, with reasons."""
        raise NotImplementedError

    async def top_rules(self, since: float, limit: int = 10) -> list[dict[str, Any]]:
        """Rules that acted most often (allowed findings excluded), split by the action each finding got.

        Per finding where the event carries the explain trail; per message (its verdict) otherwise.
        """
        raise NotImplementedError

    async def recent_decisions(self, limit: int = 12) -> list[dict[str, Any]]:
        """The latest scanned messages that were not simply allowed, with their explain trail."""
        return _decoded(await self._rows(
            "SELECT id, created, method, channel, action, entities, rules, config_version, detail FROM audit_events"
            " WHERE name = 'message_scanned' AND action IN ('warn', 'redact', 'block') ORDER BY created DESC LIMIT ?",
            (limit,)))

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

    # --- idempotency ------------------------------------------------------------------------------------------

    async def mark_processed(self, key: str) -> bool:
        """True the first time `key` is seen, False for a repeat (a retried delivery), across every process
        sharing the database: the primary key decides, never a read before the write."""
        return await self._write("INSERT INTO processed_events (key, created) VALUES (?, ?) ON CONFLICT DO NOTHING",
                                 (key, self._clock())) == 1

    async def purge_processed(self, older_than: float) -> int:
        return await self._write("DELETE FROM processed_events WHERE created < ?", (older_than,))

    # --- users' own tokens ------------------------------------------------------------------------------------

    async def save_user_token(self, user: str, token: str) -> None:
        """Keep (encrypted) the token a user granted the app, replacing an older one."""
        nonce, ciphertext = self._sealer.seal(token, b"user:" + user.encode())
        await self._write(
            'INSERT INTO user_tokens ("user", nonce, ciphertext, created) VALUES (?, ?, ?, ?) ON CONFLICT ("user")'
            " DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, created = excluded.created",
            (user, nonce, ciphertext, self._clock()))

    async def user_token(self, user: str) -> str | None:
        """The user's own token, or None when they never authorised the app (or the key changed)."""
        rows = await self._rows('SELECT nonce, ciphertext FROM user_tokens WHERE "user" = ?', (user,))
        if not rows:
            return None
        return self._sealer.open(rows[0]["nonce"], rows[0]["ciphertext"], b"user:" + user.encode())

    # --- moving between stores (`slack-pii store migrate`) ----------------------------------------------------

    # table -> (the columns that say "this row is already there", every column copied). Rows keyed by a primary
    # key keep it; audit and feedback rows get new ids in the target, so their identity is what they record.
    COPIED = {
        "held_messages": (("id",), ("id", "user", "channel", "nonce", "ciphertext", "meta", "created", "expires")),
        "allow_fingerprints": (("fingerprint",), ("fingerprint", "rule_id", "entity_type", "added_by", "created")),
        "user_tokens": (("user",), ("user", "nonce", "ciphertext", "created")),
        "feedback": (("created", "rule_id", "fingerprint", "reporter"),
                     ("rule_id", "entity_type", "fingerprint", "reporter", "created")),
        "audit_events": (("created", "name", "method", "channel", "caller", "action", "detail"),
                         ("created", "name", "source", "method", "channel", "caller", "action", "entities", "rules",
                          "latency_ms", "status", "config_version", "detail")),
    }

    async def export_rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of a copied table as stored (ciphertext stays ciphertext: the key moves with the settings)."""
        return await self._rows(f"SELECT {_names(self.COPIED[table][1])} FROM {table} ORDER BY created")

    async def import_rows(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Insert the rows that are not there yet; the number inserted. Running it twice inserts nothing.

        NOTE: a look-up before each insert, not a constraint: fine for a one-off copy run by one operator, not
        for concurrent writers.
        """
        keys, columns = self.COPIED[table]
        insert = f"INSERT INTO {table} ({_names(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        inserted = 0
        for row in rows:
            where = " AND ".join(f'"{k}" IS NULL' if row[k] is None else f'"{k}" = ?' for k in keys)
            found = await self._rows(f"SELECT 1 AS found FROM {table} WHERE {where} LIMIT 1",
                                     tuple(row[k] for k in keys if row[k] is not None))
            if not found:
                inserted += await self._write(insert, tuple(row[c] for c in columns))
        return inserted


def _names(columns) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _decoded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        for column in ("entities", "rules", "detail"):
            row[column] = json.loads(row[column])
    return rows
