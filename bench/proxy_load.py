"""Load the proxy on loopback: added latency (p50/p99) over a direct upstream call, and sustained requests/s.

    .venv/bin/python bench/proxy_load.py [--requests 400] [--concurrency 8] [--time-limit 120]
    .venv/bin/python bench/proxy_load.py --hostile [--duration 30]    # 8 clients + 1 hostile message per second
    .venv/bin/python bench/proxy_load.py --rate 200 [--duration 60]  # open-loop mixed load: refusals, p99, RSS drift

Starts a minimal Slack-like upstream and `slack-pii serve` (each in its own process, loopback ports chosen by
the OS). The default run sends, per scenario, a bounded number of chat.postMessage calls: first one at a time
(latency), then `--concurrency` at a time (throughput). `--hostile` keeps `--concurrency` clients posting normal
messages while a hostile one (50 blocks x 20k characters of names, tens of CPU seconds of NER) arrives every second,
and reports the normal messages' p99 and refusals. `--rate` sends requests on a fixed schedule (70 % clean, 20 %
with PII, 10 % pass-through; latency counted from the scheduled time, so a stall is not hidden) and reports
refusals, p99, and the proxy's memory (parent RSS; PSS of the parent and its scan workers) after warm-up and at
the end. Extra proxy settings go through the environment (e.g. SLACK_PII_SCAN_CPU_SECONDS). Nothing leaves
127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
CLEAN = ("Deploy of billing-service 2.14.3 finished in 4m12s; all 318 checks green. "
         "Next release train leaves Thursday, ping #release-crew with questions.")
REDACT = "Customer asked about a refund for card 4111 1111 1111 1111, ssn 078-05-1123 on file; ticket 4521."
SCENARIOS = {  # name: (target, method, text)
    "direct upstream": ("upstream", "chat.postMessage", CLEAN),
    "proxy, clean text (scanned, allowed)": ("proxy", "chat.postMessage", CLEAN),
    "proxy, card + SSN (scanned, redacted)": ("proxy", "chat.postMessage", REDACT),
    "proxy, pass-through (users.list)": ("proxy", "users.list", ""),
}


def serve_upstream() -> None:
    """A minimal upstream answering like Slack (run in its own process)."""
    from aiohttp import web

    async def api(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        return web.json_response({"ok": True, "channel": body.get("channel"), "ts": "1700000000.000100",
                                  "message": {"type": "message", "text": body.get("text", "")}})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", api)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(f"PORT {runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def wait_for_line(process: subprocess.Popen, pattern: str, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                raise RuntimeError(f"process exited with {process.returncode}")
            continue
        match = re.search(pattern, line)
        if match:
            return match
    raise TimeoutError(pattern)


async def run(url: str, method: str, text: str, requests: int, concurrency: int, deadline: float):
    latencies: list[float] = []
    body = json.dumps({"channel": "C0BENCH", "text": text}).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "Authorization": "Bearer xoxb-bench"}
    queue = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            for _ in queue:
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                async with session.post(url + method, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, len(latencies) / elapsed


HOSTILE = json.dumps({"channel": "C0EVIL", "text": "hi", "blocks": [
    {"type": "section", "text": {"type": "mrkdwn", "text": ("Jane Doe met Bob Smith in Paris. " * 700)[:20_000]}}
    for _ in range(50)]}).encode()
HEADERS = {"Content-Type": "application/json; charset=utf-8", "Authorization": "Bearer xoxb-bench"}
MIX = [("chat.postMessage", CLEAN)] * 7 + [("chat.postMessage", REDACT)] * 2 + [("users.list", "")]


async def post_once(session: aiohttp.ClientSession, url: str, body: bytes) -> str:
    """"ok", or what went wrong: the Slack error code (pii_scan_busy, pii_scan_failed, ...) or the HTTP status."""
    async with session.post(url, data=body, headers=HEADERS) as response:
        raw = await response.read()
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = {}
    if response.status == 200 and answer.get("ok"):
        return "ok"
    return answer.get("error") or f"http_{response.status}"


async def hostile_run(proxy: str, concurrency: int, duration: float) -> dict:
    """`concurrency` clients post normal messages back to back; one hostile message starts every second."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    hostile: dict[str, int] = {}
    stop = time.monotonic() + duration
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        async def client(index: int) -> None:
            n = 0
            while time.monotonic() < stop:
                method, text = MIX[(index + n) % len(MIX)]
                n += 1
                body = json.dumps({"channel": "C0BENCH", "text": text}).encode()
                started = time.perf_counter()
                result = await post_once(session, proxy + method, body)
                latencies.append((time.perf_counter() - started) * 1000)
                outcomes[result] = outcomes.get(result, 0) + 1

        async def attacker() -> None:
            tasks = []
            while time.monotonic() < stop:
                tasks.append(asyncio.ensure_future(post_once(session, proxy + "chat.postMessage", HOSTILE)))
                await asyncio.sleep(1.0)
            for result in await asyncio.gather(*tasks):
                hostile[result] = hostile.get(result, 0) + 1

        await asyncio.gather(attacker(), *(client(i) for i in range(concurrency)))
    return {"normal": len(latencies), "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies), "outcomes": outcomes, "hostile": hostile}


async def rate_run(proxy: str, rate: float, duration: float, memory) -> dict:
    """Open loop: request i starts at t0 + i/rate whatever happened before; latency from that scheduled time."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def one(i: int, scheduled: float) -> None:
            method, text = MIX[(i * 7) % len(MIX)]
            body = json.dumps({"channel": "C0BENCH", "text": text}).encode()
            try:
                result = await post_once(session, proxy + method, body)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                result = type(exc).__name__
            latencies.append((time.perf_counter() - scheduled) * 1000)
            outcomes[result] = outcomes.get(result, 0) + 1

        loop = asyncio.get_running_loop()
        await asyncio.gather(*(one(i, time.perf_counter()) for i in range(int(rate * 5))))  # warm-up burst
        latencies.clear()
        outcomes.clear()
        before = memory()
        start, total, tasks = time.perf_counter(), int(rate * duration), []
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(loop.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        after = memory()
    return {"sent": total, "achieved_rps": total / elapsed, "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99), "max_ms": max(latencies), "outcomes": outcomes,
            "memory_before": before, "memory_after": after}


def memory_of(pid: int) -> dict:
    """The proxy's RSS and the PSS of it and its children (the scan workers share pages copy-on-write)."""
    def field(path: str, name: str) -> int:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        return 0

    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == pid]
    pss = sum(field(f"/proc/{p}/smaps_rollup", "Pss") for p in [pid, *children])
    return {"rss_mb": field(f"/proc/{pid}/status", "VmRSS") / 1024, "pss_total_mb": pss / 1024,
            "workers": len(children)}


def _ppid(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def bench(urls: dict[str, str], requests: int, concurrency: int, time_limit: float) -> list[dict]:
    deadline = time.monotonic() + time_limit
    results = []
    for name, (target, method, text) in SCENARIOS.items():
        url = urls[target]
        await run(url, method, text, 20, 1, deadline)  # warm-up (connections, caches)
        latencies, _ = await run(url, method, text, requests, 1, deadline)
        _, rps = await run(url, method, text, requests, concurrency, deadline)
        results.append({"scenario": name, "n": len(latencies), "p50_ms": percentile(latencies, 50),
                        "p99_ms": percentile(latencies, 99), "mean_ms": statistics.fmean(latencies),
                        f"rps_at_{concurrency}": rps})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per scenario and phase (bounded)")
    parser.add_argument("--concurrency", type=int, default=8, help="in-flight requests in the throughput phase")
    parser.add_argument("--time-limit", type=float, default=120, help="stop sending after this many seconds")
    parser.add_argument("--hostile", action="store_true", help="normal clients plus one hostile message per second")
    parser.add_argument("--rate", type=float, default=0, help="open-loop mixed load at this many requests/s")
    parser.add_argument("--duration", type=float, default=60, help="seconds of --hostile or --rate load")
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream()
        return 0
    with tempfile.TemporaryDirectory() as data_dir:
        upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream"], stdout=subprocess.PIPE, text=True)
        proxy = None
        try:
            up_port = wait_for_line(upstream, r"PORT (\d+)", 30)[1]
            env = {**os.environ, "SLACK_PII_UPSTREAM_URL": f"http://127.0.0.1:{up_port}/api/",
                   "SLACK_PII_DATA_DIR": data_dir, "SLACK_PII_LOG_LEVEL": "WARNING", "SLACK_PII_WATCH_CONFIG": "false",
                   "SLACK_PII_PORT": "0"}
            proxy = subprocess.Popen([str(ROOT / ".venv/bin/slack-pii"), "serve"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env)
            proxy_url = wait_for_line(proxy, r"listening on (http://\S+)", 120)[1]
            urls = {"upstream": f"http://127.0.0.1:{up_port}/api/", "proxy": f"{proxy_url}/api/"}
            if args.hostile or args.rate:
                if args.hostile:
                    report = asyncio.run(hostile_run(urls["proxy"], args.concurrency, args.duration))
                else:
                    report = asyncio.run(rate_run(urls["proxy"], args.rate, args.duration,
                                                  lambda: memory_of(proxy.pid)))
                print(json.dumps({"mode": "hostile" if args.hostile else f"rate {args.rate:g}/s",
                                  "duration_s": args.duration, **report}, indent=1))
                return 0
            results = asyncio.run(bench(urls, args.requests, args.concurrency, args.time_limit))
        finally:
            for process in (proxy, upstream):
                if process is not None:
                    process.terminate()
                    try:
                        process.wait(30)
                    except subprocess.TimeoutExpired:  # in-flight hostile scans hold a graceful shutdown
                        process.kill()
                        process.wait(30)
    direct = results[0]
    print(f"{'scenario':40} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10} "
          f"{'req/s @' + str(args.concurrency):>10}")
    for row in results:
        print(f"{row['scenario']:40} {row['n']:>5} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
              f"{row['p50_ms'] - direct['p50_ms']:>10.2f} {row['p99_ms'] - direct['p99_ms']:>10.2f} "
              f"{row[f'rps_at_{args.concurrency}']:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
