"""The long fuzz profile: generated Slack requests with canaries against `slack-pii serve` and the recording double.

    .venv/bin/python bench/fuzz.py [--count 10000] [--seed 15] [--concurrency 4] [--time-limit 3600]

Cases come from tests/fuzz/cases.py (hypothesis): every encoding Slack accepts, deep and huge payloads, disguised
card numbers, AWS keys and Slack tokens in every place Slack stores, parser differentials and malformed HTTP. The
proxy runs as its own process (so its memory is measured alone) with the Slack double in this one; everything
stays on 127.0.0.1. Prints: answers by status, 5xx, hangs, canaries that reached Slack or the logs, store or
/metrics, and the proxy's RSS at start, after warm-up and at the end (drift = end vs. after warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from proxy_load import wait_for_line  # noqa: E402

from tests.fuzz.cases import generate  # noqa: E402
from tests.fuzz.harness import Report, check_at_rest, check_upstream, run  # noqa: E402
from tests.slack_double import SlackDouble  # noqa: E402

CHUNK = 500  # cases sent between two RSS samples


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def fuzz(args: argparse.Namespace) -> int:
    started = time.monotonic()
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        cases = pickle.loads(cache.read_bytes())[:args.count]
    else:
        cases = generate(args.count, seed=args.seed)
        if cache is not None:
            cache.write_bytes(pickle.dumps(cases))
    print(f"generated {len(cases)} cases in {time.monotonic() - started:.0f} s "
          f"({sum(c.huge for c in cases)} huge, {sum(c.label.startswith('hostile') for c in cases)} hostile)",
          flush=True)
    double = await SlackDouble().start()
    with tempfile.TemporaryDirectory() as data_dir, tempfile.TemporaryDirectory() as log_dir:
        log_path = Path(log_dir) / "proxy.log"
        env = {**os.environ, "SLACK_PII_UPSTREAM_URL": double.api_url,
               "SLACK_PII_WEBHOOK_UPSTREAM_URL": double.base_url, "SLACK_PII_DATA_DIR": data_dir,
               "SLACK_PII_LOG_LEVEL": args.log_level, "SLACK_PII_WATCH_CONFIG": "false", "SLACK_PII_PORT": "0",
               "SLACK_PII_HOST": "127.0.0.1", "SLACK_PII_SECRET_KEY": "cd" * 32}
        with log_path.open("w") as log_file:
            proxy = subprocess.Popen([str(ROOT / ".venv/bin/slack-pii"), "serve"], stdout=subprocess.PIPE,
                                     stderr=log_file, text=True, env=env)
            try:
                url = (await asyncio.to_thread(wait_for_line, proxy, r"listening on (http://\S+)", 300))[1]
                report, samples = Report(), [("start", 0, rss_mb(proxy.pid))]
                deadline = time.monotonic() + args.time_limit
                for offset in range(0, len(cases), CHUNK):
                    if time.monotonic() > deadline:
                        print(f"time limit reached after {offset} cases", flush=True)
                        break
                    await run(cases[offset:offset + CHUNK], url, concurrency=args.concurrency, report=report)
                    check_upstream(double.requests, report)
                    double.requests.clear()
                    samples.append(("chunk", offset + CHUNK, rss_mb(proxy.pid)))
                    print(f"  {min(offset + CHUNK, len(cases)):>6} sent  rss {samples[-1][2]:6.1f} MB  "
                          f"5xx {report.five_xx}  forwarded canaries {report.forwarded_canaries}", flush=True)
                async with aiohttp.ClientSession() as session:
                    async with session.get(url + "/metrics") as response:
                        metrics = await response.text()
            finally:
                proxy.terminate()
                proxy.wait(60)
        check_at_rest(log_path.read_text(errors="replace"), Path(data_dir), metrics, report)
    await double.stop()
    print_report(report, samples, args.warmup)
    return 0 if not report.problems else 1


def print_report(report: Report, samples: list, warmup: int) -> None:
    print(f"\nsent {report.sent} requests in {report.seconds:.0f} s; answers by status: "
          + ", ".join(f"{status}: {count}" for status, count in sorted(report.statuses.items())))
    print(f"undocumented 5xx: {report.five_xx}   hangs: {report.hangs}   "
          f"canaries that reached Slack: {report.forwarded_canaries}   "
          f"refused as pii_scan_failed (fail closed, over the scan time budget): {report.scan_failed}")
    start = samples[0][2]
    warm = next((rss for _, sent, rss in samples if sent >= warmup), samples[-1][2])
    end = samples[-1][2]
    peak = max(rss for _, _, rss in samples)
    print(f"proxy RSS: start {start:.1f} MB, after warm-up ({warmup} requests) {warm:.1f} MB, end {end:.1f} MB, "
          f"peak {peak:.1f} MB; drift after warm-up {100 * (end - warm) / warm:+.1f} %")
    print("problems: " + ("none" if not report.problems else ""))
    for problem in report.problems[:40]:
        print(f"  {problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000, help="generated requests (bounded)")
    parser.add_argument("--seed", type=int, default=15, help="same seed, same cases")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=2000, help="requests before the RSS baseline")
    parser.add_argument("--time-limit", type=float, default=3600, help="stop sending after this many seconds")
    parser.add_argument("--cache", help="keep the generated cases in this file and reuse them (generation is slow)")
    parser.add_argument("--log-level", default="INFO", help="the proxy's SLACK_PII_LOG_LEVEL (DEBUG checks more)")
    return asyncio.run(fuzz(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
