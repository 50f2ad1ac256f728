"""The store on SQLite vs PostgreSQL: held-message and audit write throughput, and the latency PostgreSQL adds
to each proxied message.

    .venv/bin/python bench/store_bench.py [--writes 2000] [--concurrency 8] [--requests 300] [--database-url URL]

Without --database-url it starts a throwaway PostgreSQL cluster (Unix socket in a temp dir, as the tests do,
via tests/support/postgres.py) and removes it afterwards. Part 1 calls the store directly (`hold`, `record`),
one at a time and `--concurrency` at a time. Part 2 runs `slack-pii serve` twice against the same loopback
upstream, once per store, and times chat.postMessage calls that are scanned, redacted and audited (bench/
proxy_load.py's client). Nothing leaves this machine; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import proxy_load  # noqa: E402 - the loopback upstream and the timed client, reused

from slack_pii.store import open_url  # noqa: E402
from slack_pii.store.audit import MessageScanned  # noqa: E402

KEY = bytes.fromhex("ab" * 32)
HELD_TEXT = "refund card 4111 1111 1111 1111 for jane, SSN 078-05-1123; ticket 4521 " * 3


async def throughput(url: str, writes: int, concurrency: int) -> dict[str, float]:
    """Writes per second for `hold` and `record`, sequential and concurrent."""
    store = await open_url(url, KEY, pool_size=concurrency)
    event = MessageScanned(source="webapi", method="chat.postMessage", channel="C0BENCH", caller="fp" * 12,
                           action="redact", entities={"CREDIT_CARD": 1, "US_SSN": 1},
                           rules=["credit-card", "us-ssn"], latency_ms=3.2, status=200, config_version="bench",
                           findings=[{"entity_type": "CREDIT_CARD", "rule": "credit-card", "action": "redact"}])
    operations = {"hold": lambda: store.hold(HELD_TEXT, user="U0BENCH", channel="C0BENCH"),
                  "audit": lambda: store.record(event)}
    results = {}
    try:
        for name, operation in operations.items():
            for width in (1, concurrency):
                remaining = iter(range(writes))
                started = time.perf_counter()
                await asyncio.gather(*(drain(remaining, operation) for _ in range(width)))
                results[f"{name} x{width}"] = writes / (time.perf_counter() - started)
    finally:
        await store.close()
    return results


async def drain(remaining, operation) -> None:
    """One writer: call `operation` until the shared iterator of writes is used up."""
    for _ in remaining:
        await operation()


def proxy_latency(database_url: str | None, upstream_url: str, requests: int, time_limit: float) -> dict:
    """p50/p99 of a scanned, redacted and audited chat.postMessage through `serve` with the given store."""
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "SLACK_PII_UPSTREAM_URL": upstream_url, "SLACK_PII_DATA_DIR": data_dir,
               "SLACK_PII_LOG_LEVEL": "WARNING", "SLACK_PII_WATCH_CONFIG": "false", "SLACK_PII_PORT": "0",
               "SLACK_PII_SECRET_KEY": KEY.hex()}
        env.pop("SLACK_PII_DATABASE_URL", None)
        if database_url:
            env["SLACK_PII_DATABASE_URL"] = database_url
        proxy = subprocess.Popen([sys.executable, "-m", "slack_pii", "serve"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, env=env)
        try:
            url = proxy_load.wait_for_line(proxy, r"listening on (http://\S+)", 180)[1] + "/api/"
            deadline = time.monotonic() + time_limit
            asyncio.run(proxy_load.run(url, "chat.postMessage", proxy_load.REDACT, 20, 1, deadline))  # warm-up
            latencies, _ = asyncio.run(proxy_load.run(url, "chat.postMessage", proxy_load.REDACT, requests, 1,
                                                      deadline))
        finally:
            proxy.terminate()
            proxy.wait(60)
    return {"n": len(latencies), "p50_ms": proxy_load.percentile(latencies, 50),
            "p99_ms": proxy_load.percentile(latencies, 99), "mean_ms": statistics.fmean(latencies)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=2000, help="writes per operation and width (bounded)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent writers (and pool size)")
    parser.add_argument("--requests", type=int, default=300, help="proxied messages per store")
    parser.add_argument("--time-limit", type=float, default=120, help="stop sending after this many seconds")
    parser.add_argument("--database-url", help="an existing PostgreSQL database (default: a throwaway cluster)")
    args = parser.parse_args()

    cluster = None
    database_url = args.database_url
    if not database_url:
        from tests.support.postgres import Cluster, create_database, find_bin_dir

        bin_dir = find_bin_dir()
        if bin_dir is None:
            print("error: no PostgreSQL binaries (apt-get install postgresql) and no --database-url", file=sys.stderr)
            return 2
        cluster = Cluster(bin_dir).init()
        cluster.start()
        database_url = create_database(cluster.url())
    upstream = subprocess.Popen([sys.executable, proxy_load.__file__, "--serve-upstream"], stdout=subprocess.PIPE,
                                text=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stores = {"sqlite": f"sqlite:///{tmp}/bench.sqlite3", "postgresql": database_url}
            print(f"store write throughput (writes/s; {args.writes} writes each; held text {len(HELD_TEXT)} chars)")
            print(f"{'store':12} " + " ".join(f"{k:>12}" for k in ("hold x1", f"hold x{args.concurrency}",
                                                                    "audit x1", f"audit x{args.concurrency}")))
            for name, url in stores.items():
                row = asyncio.run(throughput(url, args.writes, args.concurrency))
                print(f"{name:12} " + " ".join(f"{v:>12.0f}" for v in row.values()))
        port = proxy_load.wait_for_line(upstream, r"PORT (\d+)", 30)[1]
        upstream_url = f"http://127.0.0.1:{port}/api/"
        print(f"\nproxied chat.postMessage, card + SSN (scanned, redacted, audited), one at a time, "
              f"{args.requests} requests")
        rows = {name: proxy_latency(url, upstream_url, args.requests, args.time_limit)
                for name, url in (("sqlite", None), ("postgresql", database_url))}
        print(f"{'store':12} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
        for name, row in rows.items():
            print(f"{name:12} {row['n']:>5} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['mean_ms']:>8.2f}")
        added = {k: rows["postgresql"][k] - rows["sqlite"][k] for k in ("p50_ms", "p99_ms", "mean_ms")}
        print(f"{'added by pg':12} {'':>5} {added['p50_ms']:>8.2f} {added['p99_ms']:>8.2f} {added['mean_ms']:>8.2f}")
    finally:
        upstream.terminate()
        upstream.wait(30)
        if cluster is not None:
            cluster.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
