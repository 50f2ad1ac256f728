"""`slack-pii export-scan`: scan a Slack workspace export for what already reached Slack (tools/history.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def register(subparsers) -> None:
    from slack_pii.tools.history import parse_day, split_names

    parser = subparsers.add_parser(
        "export-scan", help="scan a Slack workspace export (.zip or folder) into a report folder",
        description="Scan every message of a workspace export (public and private channels, DMs, group DMs: text, "
        "blocks, attachments, file titles, thread replies, edits, bot posts) with the configured rules and policy. "
        "Writes REPORT_DIR/findings.jsonl (one line per message with findings: the scan --jsonl findings and "
        "verdict, plus channel, ts, thread_ts, user, permalink), summary.csv and report.html. Resumable: run the "
        "same command again with the same --out and it carries on where it stopped. No value found is written.")
    parser.add_argument("export", type=Path, metavar="EXPORT", help="the export .zip or its unpacked folder")
    parser.add_argument("--out", type=Path, required=True, metavar="REPORT_DIR", help="report folder (created)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default: one per core)")
    parser.add_argument("--since", type=parse_day, help="only days from this date on (2024-05-01)")
    parser.add_argument("--until", type=parse_day, help="only days up to this date (inclusive)")
    parser.add_argument("--channels", type=split_names, default=(), help="only these conversations (comma-separated "
                        "names or ids)")
    parser.add_argument("--exclude-channels", type=split_names, default=(), help="skip these conversations")
    parser.add_argument("--plan", type=Path, help="also write a remediation plan (JSON lines) for `slack-pii "
                        "remediate`: block verdicts are deleted, redact verdicts redacted")
    parser.add_argument("--names", action="store_true", help="show posters' and group DMs' names in the report "
                        "(default: user and conversation ids only)")
    parser.add_argument("--workspace-url", default="", help="https://yours.slack.com, to put permalinks in the report")
    parser.add_argument("--no-ner", action="store_true", help="skip spaCy NER (pattern rules only; faster)")
    parser.set_defaults(func=cmd_export_scan)


def cmd_export_scan(args) -> int:
    from slack_pii.config import load_settings
    from slack_pii.detect.scanner import build_scanner
    from slack_pii.tools.history import Filters, HistoryError, Export, run_export_scan

    try:
        Export(args.export)  # a wrong path fails in a second, before the model loads
        settings = load_settings(args.config, **({"ner": False} if args.no_ner else {}))
        scanner = build_scanner(settings)
        result = run_export_scan(
            scanner, args.export, args.out, workers=args.workers or os.cpu_count() or 1,
            filters=Filters(args.since, args.until, args.channels, args.exclude_channels), plan_path=args.plan,
            names=args.names, workspace_url=args.workspace_url, show_progress=sys.stderr.isatty(), stderr=sys.stderr)
    except HistoryError as exc:
        print(f"export-scan: {exc}", file=sys.stderr)
        return 2
    print_summary(result, args.out, args.plan)
    return 0


def print_summary(result: dict, out: Path, plan: Path | None) -> None:
    """One paragraph on stdout: what was read, found and skipped, and where the report is."""
    totals, run = result["totals"], result["run"]
    skipped = sum(totals["skipped"].values())
    print(f"scanned {totals['scanned']:,} messages ({skipped:,} skipped) in {run['units_scanned']:,} new "
          f"{'day files' if run['source'] == 'export' else 'conversations'} ({run['units_resumed']:,} resumed) in "
          f"{run['seconds']:.1f} s: {totals['with_findings']:,} with findings "
          f"({', '.join(f'{v} {k}' for k, v in sorted(totals['verdicts'].items())) or 'none'})")
    print(f"report: {out / 'report.html'}  findings: {out / 'findings.jsonl'}  summary: {out / 'summary.csv'}"
          + (f"  plan: {plan}" if plan else ""))
