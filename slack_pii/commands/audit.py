"""`slack-pii audit`: list or export the audit trail (table, JSON lines, CSV). Shapes only: no values exist to show."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import re
import sys
import time
from datetime import datetime, timezone

FIELDS = ("time", "name", "source", "method", "channel", "caller", "action", "entities", "rules", "latency_ms",
          "status", "config_version")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "audit", help="list or export audit events (what was scanned and decided; never values)",
        description="Audit events from the store in data_dir, oldest first.")
    parser.add_argument("--format", choices=("table", "jsonl", "csv"), default="table",
                        help="table (default), jsonl (one JSON object per line) or csv")
    parser.add_argument("--since", type=parse_since, help="only events since an ISO time (2026-01-31T12:00) or "
                        "a duration ago (90s, 15m, 2h, 7d)")
    parser.add_argument("--limit", type=int, help="only the newest N events")
    parser.set_defaults(func=cmd_audit)


def parse_since(value: str, now: float | None = None) -> float:
    match = _DURATION.match(value.strip())
    if match:
        return (time.time() if now is None else now) - float(match[1]) * _UNITS[match[2]]
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("use an ISO time (2026-01-31T12:00) or a duration (15m, 2h, 7d)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def cmd_audit(args: argparse.Namespace) -> int:
    from slack_pii.config import load_settings

    settings = load_settings(args.config)
    if not settings.database_path.exists():
        print(f"no audit events yet ({settings.database_path} does not exist)", file=sys.stderr)
        return 0
    rows = asyncio.run(_load(settings, args.since, args.limit))
    render(rows, args.format, sys.stdout)
    return 0


async def _load(settings, since: float | None, limit: int | None) -> list[dict]:
    from slack_pii.keys import keys_for
    from slack_pii.store.sqlite import Store

    store = await Store.open(settings.database_path, keys_for(settings).at_rest)
    try:
        return await store.audit_events(since=since, limit=limit)
    finally:
        await store.close()


def _flat(row: dict) -> dict:
    record = {name: row.get(name) for name in FIELDS if name != "time"}
    record["time"] = datetime.fromtimestamp(row["created"], timezone.utc).isoformat(timespec="milliseconds")
    return {name: record[name] for name in FIELDS} | ({"detail": row["detail"]} if row.get("detail") else {})


def render(rows: list[dict], fmt: str, out) -> None:
    records = [_flat(row) for row in rows]
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=(*FIELDS, "detail"), extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({**record, "entities": json.dumps(record["entities"]), "rules": " ".join(record["rules"]),
                             "detail": json.dumps(record.get("detail", {}))})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(records)} audit event(s)", title_justify="left")
    for column in ("time", "method", "channel", "action", "entities", "rules", "ms", "status", "caller"):
        table.add_column(column)
    for r in records:
        entities = ", ".join(f"{k}×{v}" for k, v in r["entities"].items())
        table.add_row(r["time"], r["method"] or "", r["channel"] or "", r["action"] or "", entities,
                      ", ".join(r["rules"]), f"{r['latency_ms'] or 0:.1f}", str(r["status"] or ""),
                      (r["caller"] or "")[:12])
    Console(file=out, highlight=False, width=160).print(table)
