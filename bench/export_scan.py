"""Export-scan throughput and memory on a generated workspace export.

    .venv/bin/python bench/export_scan.py [--count 100000] [--workers 2] [--no-ner] [--keep DIR] [--json]

Writes a seeded export (`slack_pii.tools.history_corpus`: public and private channels, DMs, group DMs, threads,
bot posts, files, edits; texts from the labelled corpus generator, so about half the messages hold something)
into a temporary folder, then runs `slack-pii export-scan` on it in its own process and reads the figures the
run recorded in REPORT_DIR/state.json: messages/s over the scan (start-up excluded), peak RSS of the parent and
of each forked worker. Wall time including start-up is reported too. Timings depend on the machine and on what
else runs on it: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MSGS_PER_S = 1500


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="text-bearing messages (plus 2%% joins)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-ner", action="store_true", help="pattern rules only")
    parser.add_argument("--zip", action="store_true", help="scan the .zip instead of the folder")
    parser.add_argument("--keep", type=Path, help="write the export and report here (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from slack_pii.tools.history_corpus import generate_export, zip_export

    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        base = args.keep or Path(tmp)
        export, out = base / "export", base / "report"
        started = time.perf_counter()
        manifest = generate_export(export, args.count, args.seed)
        generated_s = time.perf_counter() - started
        target = zip_export(export, base / "export.zip") if args.zip else export
        size_mb = sum(p.stat().st_size for p in export.rglob("*.json")) / 2 ** 20
        env = dict(os.environ, SLACK_PII_DATA_DIR=str(base / "data"), SLACK_PII_SECRET_KEY="0f" * 32)
        command = [sys.executable, "-m", "slack_pii", "export-scan", str(target), "--out", str(out), "--workers",
                   str(args.workers)] + (["--no-ner"] if args.no_ner else [])
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall_s = time.perf_counter() - started
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return 1
        run = json.loads((out / "state.json").read_text())["runs"][-1]
        summary = {
            "messages": manifest["messages"], "export_mb": round(size_mb, 1), "day_files": run["units_total"],
            "workers": args.workers, "cores": os.cpu_count(), "ner": not args.no_ner, "zip": args.zip,
            "generate_s": round(generated_s, 1), "scan_s": run["seconds"], "wall_s_with_startup": round(wall_s, 1),
            "messages_per_s": run["messages_per_s"],
            "messages_per_s_with_startup": round(manifest["messages"] / wall_s, 1),
            "scan_cpu_s": run["cpu_s"],
            "messages_per_cpu_s": round(run["messages"] / max(run["cpu_s"], 1e-6), 1),
            # what `workers` cores would do if the scan had them to itself (the machine may be shared)
            "projected_messages_per_s_idle": round(run["messages"] / max(run["cpu_s"], 1e-6) * args.workers, 1),
            "peak_rss_mb": run["peak_rss_mb"], "load_average_1m": round(os.getloadavg()[0], 2),
            "target_messages_per_s": TARGET_MSGS_PER_S, "met": run["messages_per_s"] >= TARGET_MSGS_PER_S,
        }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:>28}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
