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

# Exit codes (README "Exit codes"): 2 is every expected failure (bad setting, file, option or config), said in one
# line on stderr; `scan` adds its verdict so pre-commit hooks and CI can act on it.
EXIT_OK, EXIT_ERROR, EXIT_REDACT, EXIT_BLOCK = 0, 2, 3, 4
SCAN_EXIT = {"allow": EXIT_OK, "warn": EXIT_OK, "redact": EXIT_REDACT, "block": EXIT_BLOCK}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line with the fix and exit 2 (the usage block stays in --help)."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (fix: see `{self.prog} --help`)\n")


def _settings_epilog() -> str:
    lines = ["settings (environment variables; also accepted as lower-case keys in --config YAML):"]
    for env, default, help_text in settings_help():
        shown = f" [default: {default}]" if default else ""
        lines.append(f"  {env}{shown}\n      {help_text}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="slack-pii",
        description="Local PII and secret redaction for Slack: scan, redact or block before Slack stores anything.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_settings_epilog(),
    )
    parser.add_argument("--config", type=Path, help="YAML settings file (see settings below)")
    parser.add_argument("--debug", action="store_true", help="show the traceback behind an error message")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    scan = sub.add_parser(
        "scan", help="scan text or a Web API payload and show findings, decision and redacted text",
        description="Scan a message. Text comes from the argument or stdin; stdin that parses as a JSON object is "
        "treated as a Web API payload (text, blocks, attachments ...). Exit code: 0 allow or warn, 3 redact, "
        "4 block, 2 error (for pre-commit hooks and CI); --jsonl exits 0 unless it fails as a whole.",
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
    check.add_argument("--schema", choices=("policy", "rules"), help="print the JSON Schema of a policy or rules "
                       "file (for editors, e.g. yaml-language-server) and exit")
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
        return EXIT_ERROR
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `slack-pii ... | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        lines = explain(exc)
        if lines is None:
            raise
        if args.debug:
            import traceback

            traceback.print_exc()
        for line in lines:
            print(line, file=sys.stderr)
        return EXIT_ERROR


def explain(exc: BaseException) -> list[str] | None:
    """An expected failure as lines that name the setting or file and the fix; None for a bug (traceback)."""
    from pydantic import ValidationError

    from slack_pii.detect.nlp import ModelNotInstalled
    from slack_pii.errors import ConfigError
    from slack_pii.store.base import StoreUnavailable

    if isinstance(exc, ConfigError):
        return [f"config error: {problem}" for problem in exc.problems]
    if isinstance(exc, (ModelNotInstalled, StoreUnavailable)):
        return [f"error: {exc}"]
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return [_setting_error(error) for error in exc.errors(include_url=False, include_input=False)]
    if isinstance(exc, OSError) and exc.filename:
        return [f"error: {exc.filename}: {exc.strerror or type(exc).__name__} (fix: check the path and its permissions)"]
    return None


_SETTING_FIX = {"int_parsing": "a whole number", "float_parsing": "a number", "bool_parsing": "true or false",
                "literal_error": "one of the values listed"}


def _setting_error(error: dict) -> str:
    """One bad setting: its environment name (and --config key), what is wrong, never its value."""
    from slack_pii.config import settings_help

    name = str(error["loc"][0]) if error["loc"] else ""
    env = next((env for env, _, _ in settings_help() if env.lower() in (f"slack_pii_{name}", name)), name)
    message = error["msg"].removeprefix("Value error, ")
    want = _SETTING_FIX.get(error["type"])
    fix = f"set {env} to {want}, or unset it for the default" if want else f"see {env} in `slack-pii --help`"
    if name == "secret_key":
        fix = f"set {env} to `openssl rand -hex 32`, or unset it to have one generated in the data directory"
    return f"config error: {env} (or `{name}` in the --config file): {message} (fix: {fix})"


# --- scan ---------------------------------------------------------------------------------------------------


def _scanner(args, **overrides):
    """A scanner for a command that only reads: no key file or store is created (see `keys_for`)."""
    from slack_pii.config import load_settings
    from slack_pii.detect.scanner import build_scanner
    from slack_pii.keys import keys_for

    settings = load_settings(args.config, **overrides)
    keys = keys_for(settings, create=False)
    return build_scanner(settings, keys), keys


def _note_one_off_pseudonyms(keys, scanner, outcomes) -> None:
    """Say (on stderr) when a pseudonym in the output came from a one-off key: it matches nothing the proxy
    stores or logs."""
    if keys.ephemeral and any(scanner.policy.redaction_for(f.entity_type).operator == "hash"
                              for outcome in outcomes for f in outcome.decision.to_redact):
        print("note: no SLACK_PII_SECRET_KEY (or data_dir/secret.key) found: pseudonyms above use a one-off key and "
              "will not match the proxy's; set SLACK_PII_SECRET_KEY to get the same ones", file=sys.stderr)


def _channel(args) -> dict[str, str | None]:
    channel = getattr(args, "channel", None)
    if channel and channel.startswith("#"):
        return {"channel_id": None, "channel_name": channel[1:]}
    return {"channel_id": channel, "channel_name": None}


def cmd_scan(args) -> int:
    overrides = {"ner": False} if args.no_ner else {}
    if args.text is None and sys.stdin.isatty():  # someone typed `slack-pii scan` and waits for something to happen
        what = "JSON lines" if args.jsonl else "the message (text, or a Web API payload as JSON)"
        print(f"scan: reading {what} from stdin; end with Ctrl-D (or pass the text as an argument)", file=sys.stderr)
    if args.jsonl:
        return _scan_jsonl(args, overrides)
    raw = args.text if args.text is not None else sys.stdin.read()
    payload: Any = raw
    if args.text is None and raw.lstrip().startswith("{"):
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as exc:
            print(f"error: stdin looks like JSON but does not parse (line {exc.lineno}, column {exc.colno}) "
                  "(fix: send a Web API payload object, or pass plain text as the argument)", file=sys.stderr)
            return EXIT_ERROR
    scanner, keys = _scanner(args, **overrides)
    outcome = scanner.scan(payload, **_channel(args))
    if args.json:
        from slack_pii.tools.batch import result_record

        print(json.dumps(result_record(None, outcome, explain=args.explain), ensure_ascii=False, indent=2))
    else:
        _print_human(outcome, args.explain)
    _note_one_off_pseudonyms(keys, scanner, [outcome])
    return SCAN_EXIT[outcome.verdict]


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

    scanner, _ = _scanner(args, **overrides)  # NOTE: JSON lines carry no note; pseudonyms there are one-off too
    workers = args.workers or min(2, os.cpu_count() or 1)
    return run_batch(scanner, sys.stdin, sys.stdout, sys.stderr, workers=workers, explain=args.explain,
                     channel=_channel(args))


# --- check-config -------------------------------------------------------------------------------------------


def cmd_check_config(args) -> int:
    from slack_pii.config import load_settings

    if args.schema:
        from slack_pii.detect.policy import policy_schema
        from slack_pii.detect.rules import rules_schema

        print(json.dumps(policy_schema() if args.schema == "policy" else rules_schema(), indent=2))
        return EXIT_OK
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
        return EXIT_ERROR
    print(f"check-config: OK ({len(ruleset.rules)} rules, config version {ruleset.version})")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
