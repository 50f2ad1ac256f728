"""`slack-pii bench`: latency, throughput, start-up and memory of our engine against stock Presidio, same run."""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    from slack_pii.tools.bench import DEFAULT_COUNT, DEFAULT_SEED

    parser = subparsers.add_parser(
        "bench", help="benchmark our engine against stock Presidio on a generated Slack corpus",
        description="Generate a mixed Slack corpus (chat, leaks, bot alerts, logs, stack traces, code) and measure "
        "start-up, single-message latency p50/p95/p99, messages/s one at a time and batched (1 process and 2 "
        "forked workers) and peak RSS, for our engine and for stock Presidio (AnalyzerEngine + "
        "AnonymizerEngine), each in its own subprocess. Timings depend on the machine: this is not a test.",
    )
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help=f"messages (default {DEFAULT_COUNT})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="corpus seed")
    parser.add_argument("--no-stock", action="store_true", help="measure our engine only")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from slack_pii.tools.bench import run_bench

    def on_phase(phase: str) -> None:
        names = {"ours": "our engine", "stock": "stock Presidio", "stock_ner": "stock Presidio (NER-only pipeline)"}
        print(f"measuring {names.get(phase, phase)} …", file=sys.stderr, flush=True)

    def on_progress(line: str) -> None:
        print(f"  {line}", file=sys.stderr, flush=True)

    print(f"bench: generating {args.count} messages …", file=sys.stderr, flush=True)
    try:
        report = run_bench(args.count, args.seed, stock=not args.no_stock,
                           config=str(args.config) if args.config else None, on_phase=on_phase,
                           on_progress=on_progress)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0


ROWS = [
    ("start-up (s)", "startup_s", "{:.2f}"),
    ("single p50 (ms)", "p50_ms", "{:.2f}"),
    ("single p95 (ms)", "p95_ms", "{:.2f}"),
    ("single p99 (ms)", "p99_ms", "{:.2f}"),
    ("single msgs/s", "single_msgs_per_s", "{:.0f}"),
    ("batch msgs/s (1 process)", "batch_msgs_per_s", "{:.0f}"),
    ("batch msgs/s (2 workers)", "batch_2_workers_msgs_per_s", "{:.0f}"),
    ("peak RSS (MB)", "peak_rss_mb", "{:.0f}"),
]


def _print(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    stock = report.get("stock")
    table = Table(title=f"{report['count']} generated Slack messages ({report['corpus_chars']:,} chars), "
                  f"{report['cores']} cores", title_justify="left")
    stock_ner = report.get("stock_ner")
    columns = ("", "ours") + (("stock Presidio", "ours vs stock") if stock else ())
    columns += ("stock, NER-only pipeline", "ours vs that") if stock_ner else ()
    for column in columns:
        table.add_column(column, justify="left" if not column else "right")
    for title, key, fmt in ROWS:
        row = [title, fmt.format(report["ours"][key])]
        if stock:
            row += [fmt.format(stock[key]), _ratio(report["ratios"].get(key))]
        if stock_ner:
            row += [fmt.format(stock_ner[key]), _ratio(report["ratios_ner"].get(key))]
        table.add_row(*row)
    console.print(table)
    console.print(f"NER ran on {report['ours']['ner_gate_rate']:.0%} of segments (the gate skips code, links, ids "
                  "and text without a candidate name).")
    for name, check in report["targets"].items():
        mark = "[green]met[/]" if check["met"] else "[red]missed[/]"
        console.print(f"target {name} {check['target']}: {check['value']} {mark}")
    for note in report["notes"]:
        console.print(f"note: {note}")


def _ratio(ratio: float | None) -> str:
    if not ratio:
        return "—"
    return f"[green]{ratio:.1f}× better[/]" if ratio >= 1 else f"[red]{1 / ratio:.1f}× worse[/]"
