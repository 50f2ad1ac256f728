"""Send generated cases to a running proxy (in-process or `slack-pii serve`) in front of the recording Slack double,
and check what a security reviewer would: no 5xx, no hang, no canary reaching Slack, the logs, the store, /metrics
or any answer. Each problem is named by the case's label, never by the canary itself."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from slack_pii.detect.slack_text import build_scan_text
from tests.fuzz.cases import CANARIES, Case

REQUEST_TIMEOUT_SECONDS = 120  # a request still unanswered after this is a hang


def readable(text: str) -> str:
    """What a person could read out of `text`: invisible characters dropped, look-alikes folded, no spaces or
    dashes (so a forwarded disguised canary is still caught)."""
    folded = build_scan_text(text, "plain").text
    return "".join(c for c in folded if not c.isspace() and c != "-")


def leaked(text: str, names=tuple(CANARIES)) -> list[str]:
    plain = readable(text)
    return [name for name in names if CANARIES[name][1] in plain or CANARIES[name][0] in text]


@dataclass
class Report:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    five_xx: int = 0
    hangs: int = 0
    forwarded_canaries: int = 0
    scan_failed: int = 0  # refused as pii_scan_failed (fail closed: nothing forwarded)
    seconds: float = 0.0

    def add(self, problem: str) -> None:
        if len(self.problems) < 200:
            self.problems.append(problem)


async def send(session: aiohttp.ClientSession, base_url: str, case: Case) -> tuple[int, str, bytes]:
    if case.raw is not None:
        host, port = base_url.split("//", 1)[1].rstrip("/").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(case.raw)
            await writer.drain()
            answer = await reader.read(1 << 20)
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        ctype = next((line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith("content-type")),
                     "")
        return status, ctype, body
    async with session.request(case.http_method, base_url + case.path, data=case.body or None,
                               headers=case.headers, allow_redirects=False) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.read()


async def run(cases: list[Case], base_url: str, *, concurrency: int = 4, report: Report | None = None,
              on_progress=None) -> Report:
    """Send every case (at most `concurrency` at a time) and check each answer."""
    report = report or Report()
    started = time.perf_counter()
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False,
                                     skip_auto_headers=("Content-Type",)) as session:
        async def one(index: int, case: Case) -> None:
            async with gate:
                try:
                    status, ctype, body = await asyncio.wait_for(send(session, base_url, case),
                                                                 REQUEST_TIMEOUT_SECONDS)
                except asyncio.TimeoutError:
                    report.hangs += 1
                    report.add(f"{case.label}: no answer in {REQUEST_TIMEOUT_SECONDS} s")
                    return
                except (aiohttp.ClientError, ConnectionError) as exc:
                    if case.raw is None:
                        report.add(f"{case.label}: broken response ({type(exc).__name__})")
                    return
                report.sent += 1
                report.statuses[status] += 1
                check_answer(case, status, ctype, body, report)
                if on_progress is not None:
                    on_progress(index)

        await asyncio.gather(*(one(i, c) for i, c in enumerate(cases)))
    report.seconds += time.perf_counter() - started
    return report


def check_answer(case: Case, status: int, ctype: str, body: bytes, report: Report) -> None:
    if b"pii_scan_failed" in body[:200]:
        # Documented fail-closed refusal (Web API: 200 ok=false; webhooks: 503): a scan over its time budget.
        report.scan_failed += 1
    elif status >= 500 or status == 0:
        report.five_xx += 1
        report.add(f"{case.label}: status {status}")
    text = body.decode("utf-8", "replace")
    if leaked(text, case.canaries):
        report.add(f"{case.label}: canary in the answer (status {status})")
    if status >= 400 and case.path.startswith("/api/") and not ctype.startswith("application/json"):
        report.add(f"{case.label}: error {status} is not JSON ({ctype or 'no content type'})")


def check_upstream(recorded, report: Report) -> None:
    """No canary in anything the Slack double received (all encodings decoded, then read like a person would)."""
    for got in recorded:
        try:
            args = got.args()
            seen = json.dumps(args, ensure_ascii=False) + json.dumps(got.query, ensure_ascii=False)
        except (ValueError, KeyError, UnicodeDecodeError):
            seen = got.body.decode("utf-8", "replace") + json.dumps(got.query, ensure_ascii=False)
        names = leaked(seen)
        if names:
            report.forwarded_canaries += 1
            report.add(f"{got.method}: canary {','.join(names)} reached Slack")


def check_at_rest(log_text: str, data_dir: Path | None, metrics_text: str, report: Report) -> None:
    if leaked(log_text):
        report.add(f"canary in the logs: {','.join(leaked(log_text))}")
    if data_dir is not None:
        stored = b"".join(p.read_bytes() for p in sorted(Path(data_dir).rglob("*")) if p.is_file())
        raw = stored.decode("utf-8", "replace")
        if any(CANARIES[name][1] in raw or CANARIES[name][0] in raw for name in CANARIES):
            report.add("canary in the store files")
    if leaked(metrics_text):
        report.add("canary in /metrics")
