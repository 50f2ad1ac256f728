"""Files bench: scan a generated CSV of customers (default 100k rows, ~10 MB) and report throughput and memory.

    .venv/bin/python bench/files_bench.py [--rows 100000] [--json]

Prints the file size, extraction + scan time, MB/s, peak RSS after building the scanner (baseline) and after the
scan, and the findings per entity. Figures depend on the machine and its load: this is not a test.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIRST = ["Jane", "John", "Maria", "Wei", "Aisha", "Carlos", "Olga", "Noah", "Priya", "Liam"]
LAST = ["Doe", "Smith", "Garcia", "Chen", "Khan", "Silva", "Ivanova", "Brown", "Patel", "Murphy"]
CITIES = ["Springfield", "Riverton", "Lakeside", "Fairview", "Georgetown"]
NOTES = ["called about invoice", "prefers email", "VIP since 2019", "asked for refund", "", "moved house",
         "order 88213 delayed", "spoke to support twice"]
CARDS = ["4111 1111 1111 1111", "5500 0000 0000 0004", "3400 0000 0000 009"]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def customers_csv(rows: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    lines = ["id,name,email,ssn,phone,city,card,notes\n"]
    for index in range(rows):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        ssn = f"{rng.randint(100, 665):03d}-{rng.randint(10, 99):02d}-{rng.randint(1000, 9999):04d}"
        phone = f"(415) 555-{rng.randint(0, 9999):04d}"
        card = rng.choice(CARDS) if index % 10 == 0 else ""
        note = rng.choice(NOTES)
        lines.append(f"{index},{first} {last},{first.lower()}.{last.lower()}@acme-corp.com,{ssn},{phone},"
                     f"{rng.choice(CITIES)},{card},\"{note}\"\n")
    return "".join(lines).encode()


LOG_LINES = [
    "2026-12-02T15:{m:02d}:{s:02d}Z INFO  api.request method=GET path=/v1/orders/{n} status=200 duration_ms={d}",
    "2026-12-02T15:{m:02d}:{s:02d}Z DEBUG cache.hit key=order:{n} ttl=300 shard=3",
    "2026-12-02T15:{m:02d}:{s:02d}Z WARN  worker.retry job=invoice-{n} attempt=2 backoff_ms={d}",
    "2026-12-02T15:{m:02d}:{s:02d}Z INFO  deploy.step service=billing version=1.{d}.3 region=eu-west-1",
]
LOG_LEAKS = ["user jane.doe@acme-corp.com logged in from 203.0.113.{d}", "customer ssn 078-05-1123 in payload",
             "retrying with token xoxb-2176513720196-2193830572625-3bNfJdIL9nFHpJ8oyg1QaXkG"]


def app_log(rows: int, seed: int = 7) -> bytes:
    """Application log lines, a leak every ~200 lines: what a pasted log file mostly is."""
    rng = random.Random(seed)
    lines = []
    for index in range(rows):
        template = rng.choice(LOG_LEAKS) if index % 200 == 199 else rng.choice(LOG_LINES)
        lines.append(template.format(m=index // 60 % 60, s=index % 60, n=rng.randint(1000, 99999),
                                     d=rng.randint(1, 250)) + "\n")
    return "".join(lines).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--kind", choices=("csv", "log"), default="csv",
                        help="csv: a customers export (PII in every row); log: an application log, a leak every ~200 lines")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from slack_pii.config import Settings
    from slack_pii.detect.files import FileLimits, scan_file
    from slack_pii.detect.scanner import build_scanner

    data, name = (customers_csv(args.rows), "customers.csv") if args.kind == "csv" else (app_log(args.rows), "app.log")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), secret_key="ab" * 32)
        started = time.perf_counter()
        scanner = build_scanner(settings)
        build_s = time.perf_counter() - started
        baseline = peak_rss_mib()
        started = time.perf_counter()
        cpu_started = time.process_time()
        outcome = scan_file(scanner, name, data, FileLimits.from_settings(settings))
        scan_s = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started
    peak = peak_rss_mib()
    result = {
        "rows": args.rows, "bytes": len(data), "mib": round(len(data) / 2**20, 2), "build_s": round(build_s, 2),
        "kind": args.kind, "scan_s": round(scan_s, 2), "scan_cpu_s": round(cpu_s, 2),
        "mb_per_s": round(len(data) / 1e6 / scan_s, 2), "mb_per_cpu_s": round(len(data) / 1e6 / cpu_s, 2),
        "rss_after_build_mib": round(baseline, 1), "peak_rss_mib": round(peak, 1),
        "scan_rss_growth_mib": round(peak - baseline, 1), "verdict": outcome.verdict,
        "redacted_same_length": outcome.redacted is not None and len(outcome.redacted) == len(data),
        "entities": outcome.entities,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
