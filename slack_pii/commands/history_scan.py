"""`slack-pii history-scan`: the export scan through the Web API, for workspaces without export rights."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


def register(subparsers) -> None:
    from slack_pii.tools.history import parse_day, split_names
    from slack_pii.tools.history_api import TYPES

    parser = subparsers.add_parser(
        "history-scan", help="scan conversation history through the Web API into a report folder",
        description="Read conversations.list, conversations.history and conversations.replies through the "
        "configured upstream (SLACK_PII_UPSTREAM_URL) with SLACK_USER_TOKEN (an admin's: every conversation) or "
        "SLACK_BOT_TOKEN (the conversations the app is in), honouring Slack's rate limits and Retry-After, and "
        "write the same report folder as export-scan. Resumable per conversation: run it again with the same --out.")
    parser.add_argument("--out", type=Path, required=True, metavar="REPORT_DIR", help="report folder (created)")
    parser.add_argument("--since", type=parse_day, help="only messages from this date on (2024-05-01)")
    parser.add_argument("--until", type=parse_day, help="only messages up to this date (inclusive)")
    parser.add_argument("--channels", type=split_names, default=(), help="only these conversations (comma-separated "
                        "names or ids)")
    parser.add_argument("--exclude-channels", type=split_names, default=(), help="skip these conversations")
    parser.add_argument("--types", default=TYPES, help=f"conversation types to read (default {TYPES})")
    parser.add_argument("--plan", type=Path, help="also write a remediation plan for `slack-pii remediate`")
    parser.add_argument("--names", action="store_true", help="show posters' names in the report (users.list)")
    parser.add_argument("--no-ner", action="store_true", help="skip spaCy NER (pattern rules only; faster)")
    parser.set_defaults(func=cmd_history_scan)


def cmd_history_scan(args) -> int:
    from slack_pii import messages
    from slack_pii.commands.export_scan import print_summary
    from slack_pii.config import load_settings
    from slack_pii.detect.scanner import build_scanner
    from slack_pii.tools.history import Filters, HistoryError
    from slack_pii.tools.history_api import run_history_scan, web_client

    settings = load_settings(args.config, **({"ner": False} if args.no_ner else {}))
    secret = settings.slack_user_token or settings.slack_bot_token
    if secret is None:
        print(f"history-scan: {messages.history_no_token()}", file=sys.stderr)
        return 2
    try:
        web_client(settings, "")  # a local upstream fails here, before the model loads
        result = asyncio.run(run_history_scan(
            build_scanner(settings), settings, args.out, token=secret.get_secret_value(),
            filters=Filters(args.since, args.until, args.channels, args.exclude_channels), plan_path=args.plan,
            names=args.names, types=args.types, show_progress=sys.stderr.isatty(), stderr=sys.stderr))
    except HistoryError as exc:
        print(f"history-scan: {exc}", file=sys.stderr)
        return 2
    print_summary(result, args.out, args.plan)
    return 0
