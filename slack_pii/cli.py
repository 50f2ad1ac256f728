"""`slack-pii`: serve the proxy, scan text or payloads, check config, evaluate, benchmark, audit.

Each subcommand is a small function; heavy imports happen inside them so `--help` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from slack_pii.config import settings_help

EXIT_OK, EXIT_CONFIG, EXIT_USAGE = 0, 2, 64


def _settings_epilog() -> str:
    lines = ["settings (environment variables; also accepted as lower-case keys in --config YAML):"]
    for env, default, help_text in settings_help():
        shown = f" [default: {default}]" if default else ""
        lines.append(f"  {env}{shown}\n      {help_text}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slack-pii",
        description="Local PII and secret redaction for Slack: scan, redact or block before Slack stores anything.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_settings_epilog(),
    )
    parser.add_argument("--config", type=Path, help="YAML settings file (see settings below)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    scan = sub.add_parser(
        "scan", help="scan text or a Web API payload and show findings, decision and redacted text",
        description="Scan a message. Text comes from the argument or stdin; stdin that parses as a JSON object is "
        "treated as a Web API payload (text, blocks, attachments ...).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="batch contract (--jsonl): each input line is {\"id\": ..., \"text\": \"...\"} or {\"id\": ..., "
        "\"payload\": {...}};\neach output line is {\"id\", \"findings\": [{\"entity_type\", \"start\", \"end\", "
        "\"score\", \"action\", \"rule\"}],\n\"verdict\": \"allow|warn|redact|block\", \"redacted\"}. Offsets are "
        "Python string indices of the input text\n(payload findings also carry \"path\"). A bad line yields "
        "{\"id\", \"line\", \"error\"} and the batch goes on.",
    )
    scan.add_argument("text", nargs="?", help="message text (default: read stdin)")
    mode = scan.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print one JSON result instead of the human summary")
    mode.add_argument("--jsonl", action="store_true", help="batch: JSON lines in on stdin, JSON lines out on stdout")
    scan.add_argument("--explain", action="store_true", help="show rule, pattern, score and context words for "
                      "each finding, and what allow-lists let through")
    scan.add_argument("--channel", help="channel id or #name, for per-channel policy overrides")
    scan.add_argument("--workers", type=int, default=0, help="batch worker processes (default: one per core, max 2)")
    scan.add_argument("--no-ner", action="store_true", help="skip spaCy NER (pattern rules only)")
    scan.set_defaults(func=cmd_scan)

    check = sub.add_parser("check-config", help="validate recognizer rules and policy; exit 2 on any problem")
    check.add_argument("--recognizers", type=Path, help="rules directory (default: settings or the shipped rules)")
    check.add_argument("--policy", type=Path, help="policy file (default: settings or the shipped policy)")
    check.set_defaults(func=cmd_check_config)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands():
    """`register` functions of the modules in slack_pii/commands/ (serve, audit, eval, feedback, bench ...)."""
    import importlib
    import pkgutil

    import slack_pii.commands

    registrations = []
    for info in sorted(pkgutil.iter_modules(slack_pii.commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"slack_pii.commands.{info.name}")
        if hasattr(module, "register"):
            registrations.append(module.register)
    return registrations


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from slack_pii.errors import ConfigError

    from slack_pii.detect.nlp import ModelNotInstalled

    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except ModelNotInstalled as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


# --- scan ---------------------------------------------------------------------------------------------------


def _scanner(args, **overrides):
    from slack_pii.config import load_settings
    from slack_pii.detect.scanner import build_scanner

    settings = load_settings(args.config, **overrides)
    return build_scanner(settings)


def _channel(args) -> dict[str, str | None]:
    channel = getattr(args, "channel", None)
    if channel and channel.startswith("#"):
        return {"channel_id": None, "channel_name": channel[1:]}
    return {"channel_id": channel, "channel_name": None}


def cmd_scan(args) -> int:
    overrides = {"ner": False} if args.no_ner else {}
    if args.jsonl:
        return _scan_jsonl(args, overrides)
    raw = args.text if args.text is not None else sys.stdin.read()
    payload: Any = raw
    if args.text is None and raw.lstrip().startswith("{"):
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as exc:
            print(f"error: stdin looks like JSON but does not parse (line {exc.lineno}, column {exc.colno})",
                  file=sys.stderr)
            return EXIT_USAGE
    scanner = _scanner(args, **overrides)
    outcome = scanner.scan(payload, **_channel(args))
    if args.json:
        from slack_pii.tools.batch import result_record

        print(json.dumps(result_record(None, outcome, explain=args.explain), ensure_ascii=False, indent=2))
    else:
        _print_human(outcome, args.explain)
    return EXIT_OK


def _print_human(outcome, explain: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    colour = {"allow": "green", "warn": "yellow", "redact": "magenta", "block": "bold red"}[outcome.verdict]
    if outcome.decision.actions:
        table = Table(title="Findings", title_justify="left")
        for column in ("entity", "rule", "where", "score", "action") + (("pattern", "context") if explain else ()):
            table.add_column(column)
        for item in outcome.decision.actions:
            f = item.finding
            where = ("/" + "/".join(map(str, f.path)) + " " if f.path else "") + f"{f.start}-{f.end}"
            row = [f.entity_type, f.rule, where, f"{f.score:.2f}", item.action]
            if explain:
                row += [f.pattern, ", ".join(f.context_words)]
            table.add_row(*row)
        console.print(table)
    else:
        console.print("No findings.")
    if explain and outcome.suppressed:
        console.print("Let through by allow-lists / placeholder rules:")
        for s in outcome.suppressed:
            console.print(f"  {s.entity_type} ({s.rule}): {s.reason}")
    console.print(f"Decision: [{colour}]{outcome.verdict}[/]")
    for reason in outcome.decision.reasons:
        console.print(f"  - {reason}")
    redacted = outcome.redacted
    console.print("Redacted:" if outcome.verdict != "block" else "Redacted (what 'send redacted' would post):")
    text = redacted if isinstance(redacted, str) else json.dumps(redacted, ensure_ascii=False, indent=2)
    console.print(text, markup=False)


def _scan_jsonl(args, overrides) -> int:
    """Batch mode: stable JSON-lines contract, spaCy batching, both cores, bad lines reported and skipped."""
    from slack_pii.tools.batch import run_batch

    scanner = _scanner(args, **overrides)
    workers = args.workers or min(2, os.cpu_count() or 1)
    return run_batch(scanner, sys.stdin, sys.stdout, sys.stderr, workers=workers, explain=args.explain,
                     channel=_channel(args))


# --- check-config -------------------------------------------------------------------------------------------


def cmd_check_config(args) -> int:
    from slack_pii.config import load_settings
    from slack_pii.detect.policy import collect_policy
    from slack_pii.detect.scanner import known_entities_for_rules
    from slack_pii.detect.rules import CATEGORIES, collect_rules

    settings = load_settings(args.config)
    rules_dir = args.recognizers or settings.recognizers_dir
    policy_file = args.policy or settings.policy_file
    from slack_pii.detect.engine import collect_country_recognizers, country_recognizer_names
    from slack_pii.detect.policy import DEFAULT_POLICY_FILE

    ruleset, problems = collect_rules(rules_dir)
    _, policy_problems = collect_policy(policy_file, known_entities_for_rules(ruleset, policy_file or DEFAULT_POLICY_FILE),
                                        CATEGORIES)
    problems += policy_problems
    problems += collect_country_recognizers(country_recognizer_names(policy_file), str(policy_file or DEFAULT_POLICY_FILE))[1]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"check-config: {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_CONFIG
    print(f"check-config: OK ({len(ruleset.rules)} rules, config version {ruleset.version})")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
