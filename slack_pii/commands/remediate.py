"""`slack-pii remediate PLAN`: redact or delete what a history scan planned, through the upstream (dry run first)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "remediate", help="apply a history scan's remediation plan (dry run unless --apply)",
        description="For each planned message: read it back through the upstream (SLACK_USER_TOKEN or "
        "SLACK_BOT_TOKEN), scan it again and chat.update it with the redacted text (as its author, with the token "
        "they granted at /slack/install, else SLACK_USER_TOKEN), or chat.delete it (SLACK_USER_TOKEN, else the "
        "author's). Without --apply nothing is called: it lists what would happen. Finished items go to "
        "PLAN.done, so running it again never acts twice; messages it cannot change are listed every run "
        "(exit 1).")
    parser.add_argument("plan", type=Path, metavar="PLAN",
                        help="remediation.jsonl from export-scan/history-scan --plan")
    parser.add_argument("--apply", action="store_true", help="really edit and delete (default: dry run)")
    parser.add_argument("--per-minute", type=int, default=50, help="most chat.update/chat.delete calls per minute "
                        "(Slack's Tier 3 is about 50)")
    parser.set_defaults(func=cmd_remediate)


def cmd_remediate(args) -> int:
    from slack_pii.config import load_settings
    from slack_pii.tools.history import HistoryError

    settings = load_settings(args.config)
    try:
        outcomes = asyncio.run(_run(settings, args))
    except HistoryError as exc:
        print(f"remediate: {exc}", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    print(("applied: " if args.apply else "dry run (nothing changed; --apply to act): ")
          + (", ".join(f"{n} {result}" for result, n in sorted(counts.items())) or "nothing left to do"))
    return 1 if counts.get("cannot") else 0


def _line(outcome) -> None:
    item = outcome.item
    print(f"{outcome.result:<14} {item.action:<7} {item.channel} {item.ts}"
          + (f"  {outcome.reason}" if outcome.reason else "") + f"  [{', '.join(item.entities)}]")


async def _run(settings, args):
    from slack_pii import messages
    from slack_pii.detect.scanner import build_scanner
    from slack_pii.keys import keys_for
    from slack_pii.store import open_store
    from slack_pii.tools.history import HistoryError
    from slack_pii.tools.history_api import Pacer, Reader, web_client
    from slack_pii.tools.history_remediate import WRITE_PER_MINUTE, Tokens, read_plan, remediate

    read_plan(args.plan)  # a bad plan fails before anything opens
    admin = settings.slack_user_token.get_secret_value() if settings.slack_user_token else None
    reading = admin or (settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None)
    reader = None
    if args.apply:
        if reading is None:
            raise HistoryError(messages.history_no_token())
        per_minute = {**WRITE_PER_MINUTE, "chat.update": args.per_minute, "chat.delete": args.per_minute}
        reader = Reader(web_client(settings, reading), Pacer(per_minute))
    store, keys = None, None
    if args.apply or settings.database_url or settings.database_path.exists():  # a fresh dry run creates nothing
        keys = keys_for(settings)
        store = await open_store(settings, at_rest_key=keys.at_rest)
    try:
        tokens = Tokens(store.user_token if store else _no_token, admin)
        scanner = build_scanner(settings, keys) if args.apply else None
        return await remediate(scanner, args.plan, reader=reader, tokens=tokens, apply=args.apply, store=store,
                               key=keys.fingerprints if keys else b"", report=_line)
    finally:
        if store is not None:
            await store.close()


async def _no_token(user: str) -> None:
    return None
