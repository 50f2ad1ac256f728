"""Measure a running proxy the way the deployment examples are sized: time to ready, RSS idle, RSS under load.

    podman run -d --name sp --network host --read-only -v slack-pii-data:/data slack-pii-proxy
    python deploy/measure.py --pid "$(podman inspect sp --format '{{.State.Pid}}')" --seconds 300

Start-up is counted from the process's own start time (/proc/PID/stat), so run this right after `podman run`.
Load is loopback Slack Web API traffic (clean, warn, redact and block messages) from `--concurrency` clients.
Needs only aiohttp (the project's venv has it); prints one JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import time

import aiohttp

MESSAGES = [
    {"channel": "C0LOAD", "text": "deploy finished, dashboards are green"},
    {"channel": "C0LOAD", "text": "ping jane.doe@acme-corp.com or +1 415 555 0132 about the invoice"},
    {"channel": "C0LOAD", "text": "card on file 4111 1111 1111 1111, ssn 123-45-6789"},
    {"channel": "C0LOAD", "text": "token xoxb-2176513720196-2193830572625-3bNfJdIL9nFHpJ8oyg1QaXkG leaked"},
    {"channel": "C0LOAD", "text": "Maria Garcia from Berlin joins the on-call rotation on Monday",
     "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Handover* from Peter Smith"}}]},
]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")


def process_age_seconds(pid: int) -> float:
    """Seconds since `pid` started (its start time is in clock ticks after boot)."""
    with open(f"/proc/{pid}/stat") as stat:
        start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as uptime:
        return float(uptime.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")


async def wait_ready(session: aiohttp.ClientSession, url: str, pid: int, timeout: float = 180) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with session.get(url + "/readyz") as response:
                if response.status == 200:
                    return round(process_age_seconds(pid), 2)
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{url}/readyz not ready after {timeout}s")


async def load(session, url: str, pid: int, seconds: float, concurrency: int, sample_every: float) -> dict:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    samples: list[tuple[int, float]] = []
    stop_at = time.monotonic() + seconds
    messages = itertools.cycle(MESSAGES)

    async def client() -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            async with session.post(url + "/api/chat.postMessage", json=next(messages),
                                    headers={"Authorization": "Bearer xoxb-load-test"}) as response:
                body = await response.json(content_type=None)
            latencies.append(time.perf_counter() - started)
            key = f"{response.status}:{'ok' if body.get('ok') else body.get('error')}"
            statuses[key] = statuses.get(key, 0) + 1

    async def sampler() -> None:
        began = time.monotonic()
        while time.monotonic() < stop_at:
            samples.append((round(time.monotonic() - began), rss_mib(pid)))
            await asyncio.sleep(sample_every)

    await asyncio.gather(sampler(), *(client() for _ in range(concurrency)))
    latencies.sort()
    return {
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / seconds, 1),
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 1),
        "latency_ms_p95": round(latencies[int(len(latencies) * 0.95)] * 1000, 1),
        "statuses": statuses,
        "rss_mib_samples": samples,
        "rss_mib_max": max(rss for _, rss in samples),
        "rss_mib_end": rss_mib(pid),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--pid", type=int, required=True, help="the proxy's process id, as the host sees it")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sample-every", type=float, default=15)
    args = parser.parse_args()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        ready = await wait_ready(session, args.url, args.pid)
        await asyncio.sleep(5)
        idle = rss_mib(args.pid)
        result = await load(session, args.url, args.pid, args.seconds, args.concurrency, args.sample_every)
        await asyncio.sleep(5)
        after = rss_mib(args.pid)
    print(json.dumps({"seconds_to_ready": ready, "rss_mib_idle": idle, **result, "rss_mib_after_load": after}))


if __name__ == "__main__":
    asyncio.run(main())
