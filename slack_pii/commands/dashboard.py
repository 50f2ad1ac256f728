"""`slack-pii dashboard-screenshot`: the dashboard, rendered by a real headless Chromium, as a PNG for reviewers.

It starts the app on a free loopback port over a temporary data dir seeded with a day of audit events (made by
scanning sample messages with the real scanner, so the explain trail is real), feedback reports, an allow-listed
fingerprint and held messages; opens /dashboard in Debian's `chromium` through the DevTools protocol (a plain
CDP client on aiohttp's websocket: no Node, no Playwright); and writes a full-page PNG.

`Chromium` is also what tests/test_dashboard.py drives.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
                  "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dashboard-screenshot", help="render the dashboard with seeded data in headless Chromium and save a PNG",
        description="Starts the app on a free loopback port with seeded audit data in a temporary data dir, "
        "opens /dashboard in headless Chromium (Debian's `chromium` package) and writes a PNG.")
    parser.add_argument("--out", type=Path, default=Path("screenshots/dashboard.png"),
                        help="PNG to write (default: %(default)s)")
    parser.add_argument("--width", type=int, default=1400, help="viewport width in CSS pixels")
    parser.add_argument("--window", choices=("24h", "7d", "30d"), default="24h", help="dashboard time window")
    parser.set_defaults(func=cmd_screenshot)


def cmd_screenshot(args) -> int:
    import sys

    browser = find_chromium()
    if browser is None:
        print("error: no chromium found on PATH (fix: install it, e.g. `apt-get install -y chromium`)", file=sys.stderr)
        return 2
    result = asyncio.run(screenshot(args.out, width=args.width, window=args.window, browser=browser,
                                    config=args.config))
    print(f"wrote {args.out} ({result['bytes']} bytes, {result['width']}x{result['height']} px); "
          f"page title {result['title']!r}; {result['bars']} bars; requests: {', '.join(result['hosts'])}")
    return 0


async def screenshot(out: Path, *, width: int = 1400, window: str = "24h", browser: str | None = None,
                     config: Path | None = None, scanner=None) -> dict:
    """Seed a temp data dir, serve it on loopback, render /dashboard and write the PNG; `scanner` may be shared."""
    from aiohttp import web

    from slack_pii.app import build_app
    from slack_pii.config import load_settings
    from slack_pii.detect.scanner import build_scanner
    from slack_pii.keys import keys_for

    with tempfile.TemporaryDirectory(prefix="slack-pii-dash-") as tmp:
        settings = load_settings(config, data_dir=Path(tmp), dashboard="loopback", watch_config=False,
                                 upstream_url="local", host="127.0.0.1", port=0)
        if scanner is None:
            scanner = await asyncio.get_running_loop().run_in_executor(None, build_scanner, settings,
                                                                       keys_for(settings))
        await seed(settings, scanner)
        runner = web.AppRunner(build_app(settings, scanner=scanner), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with Chromium(browser) as chrome:
                page = await chrome.open(f"http://127.0.0.1:{port}/dashboard?window={window}", width=width)
                png = await chrome.screenshot()
        finally:
            await runner.cleanup()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    return {"bytes": len(png), "width": page["width"], "height": page["height"], "title": page["title"],
            "bars": page["bars"], "hosts": sorted({urlsplit(u).hostname or u for u in page["requests"]})}


# --- seeded data ---------------------------------------------------------------------------------------------

SAMPLES = [  # (text, channel) — fake values, valid by checksum where a checksum exists
    ("card for the refund is 4111 1111 1111 1111, exp 09/27", "C0PAYMENTS"),
    ("here is the bot token xoxb-2176513720196-2193830572625-3bNfJdIL9nFHpJ8oyg1QaXkG for the deploy", "C0DEVOPS"),
    ("customer jane.doe@acme-corp.com asked about her invoice", "C0SUPPORT"),
    ("call me on (415) 555-0132 after lunch", "C0SUPPORT"),
    ("employee SSN 078-05-1123 for the payroll form", "C0HR"),
    ("db is at 10.20.30.40, password: Sup3rS3cret!x", "C0DEVOPS"),
    ("wire it to DE89 3704 0044 0532 0130 00 please", "C0PAYMENTS"),
    ("use AKIAIOSFODNN7EXAMPLE in the docs snippet", "C0DEVOPS"),
    ("ping ops@acme-corp.com if the build breaks", "C0ENG"),
    ("lunch at noon?", "C0GENERAL"),
    ("standup moved to 10:30", "C0GENERAL"),
]
WEIGHTS = [3, 2, 6, 4, 1, 2, 1, 3, 5, 12, 8]  # how often each sample happens per hour, roughly


async def seed(settings, scanner, *, now: float | None = None, hours: int = 24) -> int:
    """Write a plausible day of audit events (real scans), feedback, an allow-listed fingerprint and held messages."""
    import random

    from slack_pii.store.audit import MessageScanned, explain
    from slack_pii.keys import fingerprint, keys_for
    from slack_pii.store.sqlite import Store

    now = time.time() if now is None else now
    rng = random.Random(6)
    outcomes = scanner.scan_many([text for text, _ in SAMPLES], channel_ids=[c for _, c in SAMPLES])
    clock_value = [now]
    keys = keys_for(settings)
    store = await Store.open(settings.database_path, keys.at_rest, clock=lambda: clock_value[0])
    events = 0
    try:
        for hour in range(hours, -1, -1):
            busy = 0.3 + 0.7 * max(0.0, 1 - abs(((now / 3600 - hour) % 24) - 14) / 8)  # office hours peak
            for (text, channel), outcome, weight in zip(SAMPLES, outcomes, WEIGHTS):
                for _ in range(rng.randint(0, max(1, round(weight * busy)))):
                    clock_value[0] = now - hour * 3600 - rng.uniform(0, 3599 if hour else 60)
                    summary = outcome.summary()
                    await store.record(MessageScanned(
                        source="webapi", method=rng.choice(("chat.postMessage", "chat.postMessage", "chat.update")),
                        channel=channel, caller=None, action=outcome.verdict, entities=summary["entities"],
                        rules=summary["rules"], latency_ms=rng.uniform(2, 30), status=200,
                        config_version=outcome.config_version, **explain(outcome)))
                    events += 1
        clock_value[0] = now - 1800
        key = keys.fingerprints
        for value, reports in (("ops@acme-corp.com", 4), ("(415) 555-0132", 2)):
            rule, entity = ("email-address", "EMAIL_ADDRESS") if "@" in value else ("phone-number", "PHONE_NUMBER")
            for n in range(reports):
                await store.record_feedback(rule, entity, fingerprint(value, key), reporter=f"U0{n}")
        await store.record_feedback("ipv4-address", "IP_ADDRESS", fingerprint("10.20.30.40", key), reporter="U09")
        await store.allow_fingerprint(fingerprint("ops@acme-corp.com", key), rule_id="email-address",
                                      entity_type="EMAIL_ADDRESS", added_by="secteam")
        for minutes, channel in ((3, "C0SUPPORT"), (9, "C0HR")):
            clock_value[0] = now - minutes * 60
            await store.hold("(held original, encrypted)", user="U0SENDER", channel=channel)
    finally:
        await store.close()
    return events


# --- a small CDP client ------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    """An installed Chromium, or None. NOTE: nothing here installs one; `.ci/run` does that, explicitly, for CI."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """Headless Chromium with a throwaway profile, driven over the DevTools protocol on loopback."""

    def __init__(self, binary: str | None = None, *, timeout: float = 30.0):
        self.binary = binary or find_chromium()
        self.timeout = timeout
        self.requests: list[str] = []  # every URL the page asked for (Network.requestWillBeSent)
        self._profile = tempfile.TemporaryDirectory(prefix="slack-pii-chromium-", ignore_cleanup_errors=True)
        self._process: asyncio.subprocess.Process | None = None
        self._session = None
        self._ws = None
        self._ids = iter(range(1, 1 << 30))
        self._pending: dict[int, asyncio.Future] = {}
        self._events: dict[str, list[asyncio.Future]] = {}
        self._listeners: dict[str, list] = {}
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> Chromium:
        import aiohttp

        if not self.binary:
            raise RuntimeError("no chromium binary found")
        profile = Path(self._profile.name)
        self._process = await asyncio.create_subprocess_exec(
            self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self._process.returncode is not None or time.monotonic() > deadline:
                await self._kill()
                raise RuntimeError("chromium did not start its DevTools endpoint")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        await self.send("Page.enable")
        await self.send("Network.enable")
        self.on("Network.requestWillBeSent", lambda params: self.requests.append(params["request"]["url"]))
        return self

    async def __aexit__(self, *exc) -> None:
        if self._ws is not None and not self._ws.closed:
            try:  # a clean exit lets Chromium stop its helpers and stop writing to the profile
                await asyncio.wait_for(self._ws.send_str(json.dumps({"id": 0, "method": "Browser.close"})), 2)
            except (ConnectionError, TimeoutError, RuntimeError):
                pass
        if self._reader:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        await self._kill()
        self._profile.cleanup()

    async def _kill(self) -> None:
        """Wait for the browser to exit, then end what is left of its own process group (renderers, zygotes)."""
        process = self._process
        if process is None:
            return
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its session was started for it alone (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future and not future.done():
                    if "error" in data:
                        future.set_exception(RuntimeError(f"CDP error: {data['error']}"))
                    else:
                        future.set_result(data.get("result", {}))
            else:
                for callback in self._listeners.get(data.get("method"), []):
                    callback(data.get("params", {}))
                for future in self._events.pop(data.get("method"), []):
                    if not future.done():
                        future.set_result(data.get("params", {}))

    def on(self, event: str, callback) -> None:
        self._listeners.setdefault(event, []).append(callback)

    def event(self, name: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._events.setdefault(name, []).append(future)
        return future

    async def send(self, method: str, **params) -> dict:
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        return await asyncio.wait_for(future, self.timeout)

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def open(self, url: str, *, width: int = 1400, height: int = 900, headers: dict | None = None) -> dict:
        """Navigate, wait for load; returns title, status, size, bar count, text and requested URLs."""
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=False)
        await self.send("Network.setExtraHTTPHeaders", headers=headers or {})
        responses: list[dict] = []
        self.on("Network.responseReceived", lambda p: responses.append(p["response"]))
        loaded = self.event("Page.loadEventFired")
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(loaded, self.timeout)
        info = await self.evaluate(
            "({title: document.title, text: document.body.innerText,"
            " bars: document.querySelectorAll('svg rect.bar').length,"
            " width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight})")
        main = next((r for r in responses if r["url"] == url), {})
        return {**info, "status": main.get("status"), "requests": list(self.requests)}

    async def screenshot(self) -> bytes:
        """Full page, at the page's own height."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        width, height = int(size["width"]), int(size["height"])
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=False)
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(shot["data"])
