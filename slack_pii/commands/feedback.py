"""`slack-pii feedback add|list|allow`: the false-positive loop, by keyed fingerprint, never by value.

`add` reads the value from stdin (never argv, which lands in shell history and `ps`), stores only its keyed
fingerprint with the rule and entity, and prints the fingerprint. `list` groups reports by rule so a security
team sees which rule nags people. `allow` turns a reported fingerprint into an allow-list entry in the store's
`allow_fingerprints` table; running proxies poll that table (every couple of seconds, and on SIGHUP), so the
exception takes effect without a redeploy and nobody has to see the value again.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

from slack_pii.cli import EXIT_ERROR

FINGERPRINT = re.compile(r"^[0-9a-f]{24}$")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "feedback", help="false-positive reports: add (value on stdin), list by rule, allow a fingerprint",
        description="False-positive reports are stored as keyed fingerprints (HMAC with the proxy's secret key); "
        "the value itself is never stored or printed.")
    sub = parser.add_subparsers(dest="feedback_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="report a value as not sensitive (the value is read from stdin)")
    add.add_argument("--rule", required=True, help="rule id that flagged the value (e.g. email-address)")
    add.add_argument("--entity", required=True, help="entity type it was flagged as (e.g. EMAIL_ADDRESS)")
    add.add_argument("--value-from-stdin", action="store_true", required=True,
                     help="read the value from stdin (required: values never go on the command line)")
    add.add_argument("--reporter", help="who reports it (a user id or a name; optional)")
    add.set_defaults(func=cmd_add)

    listing = sub.add_parser("list", help="reports grouped by rule, with the fingerprints to allow")
    listing.add_argument("--rule", help="only this rule")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=cmd_list)

    allow = sub.add_parser("allow", help="allow-list a reported fingerprint (running proxies pick it up)")
    allow.add_argument("fingerprint", help="fingerprint as shown by `feedback list` / `feedback add`")
    allow.add_argument("--by", help="who decided (kept with the entry)")
    allow.set_defaults(func=cmd_allow)


def _settings(args):
    from slack_pii.config import load_settings

    return load_settings(args.config)


async def _with_store(settings, work):
    from slack_pii.store import open_store

    store = await open_store(settings)
    try:
        return await work(store)
    finally:
        await store.close()


def _known_rules(settings) -> dict[str, str]:
    """rule id -> entity of the configured rules plus the built-in phone and NER recognizers.

    NOTE: plain YAML reading, not collect_rules: compiling the prefilter would cost seconds for a lookup.
    """
    import yaml

    from slack_pii.detect.rules import DEFAULT_RULES_DIR

    known = {"phone-number": "PHONE_NUMBER", "ner-person": "PERSON", "ner-location": "LOCATION"}
    for path in sorted(Path(settings.recognizers_dir or DEFAULT_RULES_DIR).glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue  # check-config reports broken files; here only the ids matter
        for rule in data.get("rules") or []:
            if isinstance(rule, dict) and rule.get("id"):
                known[str(rule["id"])] = str(rule.get("entity", ""))
    return known


def cmd_add(args) -> int:
    from slack_pii.keys import fingerprint, keys_for

    settings = _settings(args)
    known = _known_rules(settings)
    if args.rule not in known:
        print(f"error: unknown rule id {args.rule!r} (see recognizers/rules/*.yaml)", file=sys.stderr)
        return EXIT_ERROR
    if known[args.rule] != args.entity:
        print(f"error: rule {args.rule!r} produces {known[args.rule]}, not {args.entity}", file=sys.stderr)
        return EXIT_ERROR
    value = sys.stdin.read().strip()
    if not value:
        print("error: no value on stdin", file=sys.stderr)
        return EXIT_ERROR
    digest = fingerprint(value, keys_for(settings).fingerprints)
    del value
    asyncio.run(_with_store(settings, lambda store: store.record_feedback(args.rule, args.entity, digest,
                                                                          args.reporter)))
    print(f"recorded: {args.rule} ({args.entity}) fingerprint {digest}")
    print(f"to allow it everywhere: slack-pii feedback allow {digest}")
    return 0


def cmd_list(args) -> int:
    settings = _settings(args)

    async def read(store):
        return await store.feedback_by_rule(), await store.feedback_fingerprints(args.rule)

    groups, fingerprints = asyncio.run(_with_store(settings, read))
    if args.rule:
        groups = [g for g in groups if g["rule_id"] == args.rule]
    by_rule: dict[tuple[str, str], list[dict]] = {}
    for row in fingerprints:
        by_rule.setdefault((row["rule_id"], row["entity_type"]), []).append(row)
    if args.json:
        out = [{**group, "fingerprints": [{"fingerprint": f["fingerprint"], "reports": f["reports"],
                                          "allowed": bool(f["allowed"])}
                                         for f in by_rule.get((group["rule_id"], group["entity_type"]), [])]}
               for group in groups]
        print(json.dumps(out, indent=2))
        return 0
    if not groups:
        print("no false-positive reports yet")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="False-positive reports by rule", title_justify="left")
    for column in ("rule", "entity", "reports", "values", "allowed", "fingerprints (reports)"):
        table.add_column(column)
    for group in groups:
        rows = by_rule.get((group["rule_id"], group["entity_type"]), [])
        shown = "\n".join(f"{r['fingerprint']} ({r['reports']}){' allowed' if r['allowed'] else ''}"
                          for r in rows[:5])
        if len(rows) > 5:
            shown += f"\n… {len(rows) - 5} more (--rule {group['rule_id']} --json)"
        table.add_row(group["rule_id"], group["entity_type"], str(group["reports"]), str(group["values_reported"]),
                      str(group["allowed"]), shown)
    Console(highlight=False, width=max(120, Console().width)).print(table)
    return 0


def cmd_allow(args) -> int:
    digest = args.fingerprint.strip().lower()
    if not FINGERPRINT.match(digest):
        print("error: a fingerprint is 24 hex characters, as printed by `feedback list`", file=sys.stderr)
        return EXIT_ERROR
    settings = _settings(args)

    async def allow(store):
        reported = [r for r in await store.feedback_fingerprints() if r["fingerprint"] == digest]
        first = reported[0] if reported else {}
        added = await store.allow_fingerprint(digest, rule_id=first.get("rule_id"),
                                              entity_type=first.get("entity_type"), added_by=args.by)
        return added, reported

    added, reported = asyncio.run(_with_store(settings, allow))
    if not reported:
        print(f"note: no report has fingerprint {digest}; allow-listed anyway", file=sys.stderr)
    print(f"{'allow-listed' if added else 'already allow-listed'}: {digest}"
          + (f" ({reported[0]['rule_id']}, {reported[0]['entity_type']})" if reported else ""))
    print("running proxies pick it up within a few seconds (or at once on SIGHUP)")
    return 0
