-- The schema every store had before versioning; IF NOT EXISTS so a database made then is adopted as version 1.
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

-- Idempotency keys (Slack event ids, request signatures, OAuth states).
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
