"""`slack-pii eval LABELS.jsonl`: precision, recall and false alarms of the real scanner on labelled messages.

`--compare OTHER_CONFIG` takes a YAML settings file (the same format as `--config`, e.g. one that sets
`recognizers_dir` and/or `policy_file` to a candidate copy) and shows both configs side by side with deltas.
Counting rules: see slack_pii/tools/evaluate.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from slack_pii.cli import EXIT_ERROR as EXIT_USAGE, EXIT_OK


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="measure precision, recall and false alarms on labelled messages",
        description="Run the scanner on labelled messages ({\"id\", \"text\", \"spans\": [{\"start\", \"end\", "
        "\"label\"}]} per line) and print per-label precision, recall, F1 and support, the clean-message "
        "false-alarm rate, and the worst misses and false alarms (rule id + masked snippet). "
        "Try it on the shipped sample: slack-pii eval tests/data/labelled_sample.jsonl",
    )
    parser.add_argument("labels", type=Path, help="labelled JSON lines file")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--compare", type=Path, metavar="OTHER_CONFIG",
                        help="YAML settings file for a candidate config (e.g. recognizers_dir / policy_file); "
                        "shown side by side with the current config, with deltas")
    parser.add_argument("--recognizers", type=Path, help="rules directory for the current config")
    parser.add_argument("--policy", type=Path, help="policy file for the current config")
    parser.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from slack_pii.config import load_settings
    from slack_pii.tools.evaluate import compare, evaluate, read_labels
    from slack_pii.detect.scanner import build_scanner

    try:
        records = read_labels(args.labels)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = load_settings(args.config, recognizers_dir=args.recognizers, policy_file=args.policy)
    configs = [("current", settings)]
    if args.compare:
        if not args.compare.is_file():
            print(f"error: {args.compare}: not a YAML settings file", file=sys.stderr)
            return EXIT_USAGE
        configs.append(("candidate", load_settings(args.compare)))
    reports = []
    for name, config_settings in configs:
        scanner = build_scanner(config_settings)
        with _progress(len(records), name) as advance:
            report = evaluate(scanner, records, config=name, progress=advance).to_dict()
        report["config_version"] = scanner.config_version
        reports.append(report)
    result = reports[0]
    if len(reports) == 2:
        result = {**reports[0], "candidate": reports[1], "delta": compare(reports[0], reports[1])}
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        _print_tables(reports, result.get("delta"))
    return EXIT_OK


class _progress:
    """A rich progress bar on stderr when it is a terminal; a no-op otherwise."""

    def __init__(self, total: int, name: str):
        self.total, self.name, self.bar = total, name, None

    def __enter__(self):
        if not sys.stderr.isatty():
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=Console(file=sys.stderr), transient=True)
        self.bar.start()
        task = self.bar.add_task(f"eval ({self.name})", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _cell(value, change=None, bold: bool = False) -> str:
    """A figure, and for the candidate its change against the current config: `0.912 (+0.034)`."""
    text = f"[bold]{_fmt(value)}[/]" if bold else _fmt(value)
    if change is None:
        return text
    colour = "green" if change > 0 else "red" if change < 0 else "dim"
    return f"{text} [{colour}]({change:+.3f})[/]"


def _print_tables(reports: list[dict], delta: dict | None, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    # NOTE: piped output gets a wide fixed width: rich's default of 80 columns folds a side-by-side table.
    console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    current = reports[0]
    table = Table(title=f"Detection on {current['messages']} messages ({current['clean_messages']} clean)",
                  title_justify="left")
    table.add_column("label")
    table.add_column("support", justify="right")
    names = ["precision", "recall", "f1"]
    for report in reports:
        suffix = f" ({report['config']})" if len(reports) > 1 else ""
        for name in names:
            table.add_column(name + suffix, justify="right")
    labels = list(dict.fromkeys(label for r in reports for label in r["per_entity"]))
    for label in labels:
        row = [label, str(current["per_entity"].get(label, {}).get("support", 0))]
        for index, report in enumerate(reports):
            figures = report["per_entity"].get(label, {})
            changes = delta["per_entity"][label] if delta and index else None
            row += [_cell(figures.get(name), changes and changes[name]) for name in names]
        table.add_row(*row)
    row = ["[bold]overall[/]", str(sum(f["support"] for f in current["per_entity"].values()))]
    for index, report in enumerate(reports):
        changes = delta["overall"] if delta and index else None
        row += [_cell(report["overall"][name], changes and changes[name], bold=True) for name in names]
    table.add_section()
    table.add_row(*row)
    console.print(table)
    for report in reports:
        overall = report["overall"]
        label = f" ({report['config']})" if len(reports) > 1 else ""
        console.print(f"False alarms{label}: {report['clean_messages_flagged']} of {report['clean_messages']} clean "
                      f"messages ({overall['false_alarm']:.1%}) got a warn, redact or block verdict.")
    for report in reports:
        label = f" ({report['config']})" if len(reports) > 1 else ""
        _print_examples(console, f"Worst misses{label}", report["worst_misses"], ("label", "why"))
        _print_examples(console, f"Worst false alarms{label}", report["worst_false_alarms"], ("rule", "label"))


def _print_examples(console, title: str, rows: list[dict], keys: tuple[str, str]) -> None:
    from rich.table import Table
    from rich.text import Text

    if not rows:
        console.print(f"{title}: none")
        return
    table = Table(title=title, title_justify="left")
    for key in keys + ("count", "example (values masked)"):
        table.add_column(key, overflow="fold")
    for row in rows:
        table.add_row(Text(row[keys[0]]), Text(row[keys[1]]), str(row["count"]), Text(row["example"]))
    console.print(table)
