"""`slack-pii store migrate`: copy a store into another, e.g. the SQLite file of one sidecar into the PostgreSQL
database every replica shares.

Copies held messages, allow-listed fingerprints, false-positive reports, users' OAuth tokens and the audit trail.
Ciphertext is copied as it is: the target must run with the same SLACK_PII_SECRET_KEY (the source's key file is
the default). Running it twice copies nothing the second time. Idempotency keys and local-sink messages are
not copied: they are short-lived or test-only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

TABLES = ("held_messages", "allow_fingerprints", "feedback", "user_tokens", "audit_events")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "store", help="manage the store: copy a SQLite store into PostgreSQL",
        description="The store holds held messages (encrypted), allow-lists, OAuth tokens (encrypted), "
        "de-dup keys and the audit trail: a SQLite file in data_dir, or PostgreSQL with SLACK_PII_DATABASE_URL.")
    sub = parser.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    migrate = sub.add_parser(
        "migrate", help="copy held messages, allow-lists, OAuth tokens and audit from one store to another",
        description="Copy rows that the target does not have yet (running it twice copies nothing more). "
        "URLs: sqlite:///relative/path.sqlite3, sqlite:////absolute/path.sqlite3, postgresql://user@host/db. "
        "Both sides are opened with the configured SLACK_PII_SECRET_KEY, which must be the key the source "
        "was written with.")
    migrate.add_argument("--from", dest="source", required=True, help="the store to copy from (usually sqlite://)")
    migrate.add_argument("--to", dest="target", required=True, help="the store to copy into (usually postgresql://)")
    migrate.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    migrate.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    from slack_pii.config import load_settings
    from slack_pii.store import check_url
    from slack_pii.keys import keys_for

    settings = load_settings(args.config)
    if check_url(args.target) and check_url(args.source) == "sqlite":  # a ConfigError names the fix
        path = Path(urlsplit(args.source).path[1:])
        if not path.is_file():
            print(f"error: --from: no SQLite store at {path} (fix: sqlite:///relative or sqlite:////absolute path "
                  "of an existing slack-pii.sqlite3)", file=sys.stderr)
            return 2
    counts = asyncio.run(copy_store(args.source, args.target, keys_for(settings).at_rest,
                                    timeout_seconds=settings.database_timeout_seconds))
    if args.json:
        print(json.dumps(counts))
    else:
        for table, (found, copied) in counts.items():
            print(f"{table}: {found} in source, {copied} copied")
    return 0


async def copy_store(source_url: str, target_url: str, key: bytes, *,
                     timeout_seconds: float = 5.0) -> dict[str, list[int]]:
    """{table: [rows in source, rows copied]}; the target is migrated to the current schema first."""
    from slack_pii.store import open_url

    source = await open_url(source_url, key, timeout_seconds=timeout_seconds)
    try:
        target = await open_url(target_url, key, timeout_seconds=timeout_seconds)
        try:
            counts = {}
            for table in TABLES:
                rows = await source.export_rows(table)
                counts[table] = [len(rows), await target.import_rows(table, rows)]
            return counts
        finally:
            await target.close()
    finally:
        await source.close()
