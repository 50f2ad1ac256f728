"""The security dashboard, rendered by a real headless Chromium, and the audit trail behind it.

Chromium is Debian's `chromium` package, driven over the DevTools protocol (slack_pii.commands.dashboard.Chromium).
Tests never install anything: without a browser the browser tests skip and say why; `.ci/run` installs
chromium explicitly so that CI runs them.
"""

from __future__ import annotations

import socket
import sqlite3
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from slack_pii.app import build_app
from slack_pii.services import SERVICES
from slack_pii.commands.dashboard import Chromium, find_chromium, screenshot, seed
from slack_pii.config import Settings
from tests.conftest import TEST_KEY
from tests.factories import CARD, EMAIL
from tests.slack_double import start_proxy

TITLE = "slack-pii · security dashboard"


@pytest.fixture(scope="session")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("no headless browser: chromium is not installed (`.ci/run` installs it for CI; tests install "
                    "nothing)")
    return path


def dashboard_settings(tmp_path, **extra) -> Settings:
    return Settings(data_dir=tmp_path, secret_key=TEST_KEY, upstream_url="local", watch_config=False, **extra)


@pytest.fixture
async def seeded(tmp_path, scanner):
    """A proxy over a store holding a day of real-scan audit events, feedback and held messages."""
    settings = dashboard_settings(tmp_path)
    events = await seed(settings, scanner)
    assert events > 100
    server = await start_proxy(settings, scanner)
    yield server
    await server.close()


async def get(url: str, **kwargs) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:
        return response.status, await response.text()


async def test_dashboard_renders_the_seeded_activity_in_a_real_browser(seeded, chromium):
    url = str(seeded.make_url("/dashboard"))
    async with Chromium(chromium) as browser:
        page = await browser.open(url)
        entity_bars = await browser.evaluate(
            "[...document.querySelectorAll('#entities rect.ebar')].map(r => r.dataset.entity + ':' + r.dataset.action)")
        rule_rows = await browser.evaluate(
            "[...document.querySelectorAll('#top-rules tbody tr td:first-child')].map(td => td.innerText)")
        feedback = await browser.evaluate(
            "[...document.querySelectorAll('#feedback tbody tr')].map(tr => [...tr.cells].map(c => c.innerText))")
        held = await browser.evaluate("document.querySelectorAll('#held tbody tr').length")
    assert page["status"] == 200 and page["title"] == TITLE
    assert page["bars"] >= 20  # stacked bars across most hours of the seeded day
    assert {"EMAIL_ADDRESS:warn", "CREDIT_CARD:redact", "SLACK_TOKEN:block", "US_SSN:redact"} <= set(entity_bars)
    assert "email-address" in rule_rows and "slack-bot-token" in rule_rows
    email_row = next(row for row in feedback if row[0] == "email-address")
    assert email_row[2].strip().endswith("4") and email_row[4] == "1"  # 4 reports, 1 fingerprint allow-listed
    assert held == 2
    version = seeded.app[SERVICES].scanner_slot.config_version
    assert f"config {version}" in page["text"]
    assert "documented example value" in page["text"]  # what the placeholder exception let through
    for value in (EMAIL, CARD, "Sup3rS3cret", "078-05-1123"):
        assert value not in page["text"]
    assert page["requests"] and {urlsplit(u).hostname for u in page["requests"]} == {"127.0.0.1"}
    status, week = await get(url + "?window=7d")  # per-day bars: the seeded day fills one or two of them
    assert status == 200 and 1 <= week.count('class="bar"') <= 8 and 'class="tab on" href="?window=7d"' in week


async def test_token_mode_refuses_the_browser_without_the_token(tmp_path, scanner, chromium):
    server = await start_proxy(dashboard_settings(tmp_path, dashboard="token", dashboard_token="s3cret-dash"), scanner)
    try:
        url = str(server.make_url("/dashboard"))
        async with Chromium(chromium) as browser:
            refused = await browser.open(url)
            allowed = await browser.open(url, headers={"Authorization": "Bearer s3cret-dash"})
        assert refused["status"] == 401 and "token is required" in refused["text"]
        assert allowed["status"] == 200 and allowed["title"] == TITLE
        status, _ = await get(url + "?token=wrong")
        assert status == 401
        status, body = await get(url + "?token=s3cret-dash")
        assert status == 200 and "token=s3cret-dash" in body  # window links keep working
    finally:
        await server.close()


def non_loopback_address() -> str | None:
    """This machine's own non-loopback IPv4 address (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


async def test_loopback_mode_refuses_remote_relayed_and_rebound_requests(tmp_path, scanner):
    server = TestServer(build_app(dashboard_settings(tmp_path), scanner=scanner), host="0.0.0.0", port=0)
    await server.start_server()
    try:
        local = f"http://127.0.0.1:{server.port}/dashboard"
        assert (await get(local))[0] == 200
        status, body = await get(local, headers={"X-Forwarded-For": "203.0.113.9"})
        assert status == 403 and "relayed" in body
        status, body = await get(local, headers={"Host": "attacker.example:80"})
        assert status == 403 and "Host" in body
        address = non_loopback_address()
        if address is None:
            pytest.skip("this machine has no non-loopback IPv4 address to connect from")
        status, body = await get(f"http://{address}:{server.port}/dashboard")
        assert status == 403 and "loopback clients only" in body
        assert (await get(f"http://{address}:{server.port}/healthz"))[0] == 200  # only the dashboard is guarded
    finally:
        await server.close()


async def test_dashboard_off_has_no_route(tmp_path, scanner):
    server = await start_proxy(dashboard_settings(tmp_path, dashboard="off"), scanner)
    try:
        assert (await get(str(server.make_url("/dashboard"))))[0] == 404
    finally:
        await server.close()


async def test_audit_trail_explains_each_finding_and_allow_hit_without_values(tmp_path, scanner):
    """Explainability: rule, pattern, score and context words per finding, and what exceptions let through."""
    server = await start_proxy(dashboard_settings(tmp_path), scanner)
    text = f"ssn 078-05-1123 and mail {EMAIL}; docs key AKIAIOSFODNN7EXAMPLE"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(server.make_url("/api/chat.postMessage"),
                                    json={"channel": "C0AUDIT", "text": text}) as response:
                assert (await response.json())["ok"] is True
        [event] = await server.app[SERVICES].store.audit_events()
        findings = {f["rule"]: f for f in event["detail"]["findings"]}
        ssn = findings["us-ssn"]
        assert ssn["entity_type"] == "US_SSN" and ssn["action"] == "redact" and ssn["pattern"]
        assert ssn["score"] > 0.5 and "ssn" in ssn["context_words"]
        assert findings["email-address"]["action"] == "warn" and findings["email-address"]["path"] == "/text"
        assert {"entity_type": "AWS_ACCESS_KEY_ID", "rule": "aws-access-key-id",
                "reason": "documented example value", "path": "/text"} in event["detail"]["suppressed"]
        status, page = await get(str(server.make_url("/dashboard")))
        assert status == 200 and "us-ssn" in page and "context: ssn" in page
    finally:
        await server.close()
    database = tmp_path / "slack-pii.sqlite3"
    audit = repr(sqlite3.connect(database).execute("SELECT * FROM audit_events").fetchall())
    for value in ("078-05-1123", EMAIL, "AKIAIOSFODNN7EXAMPLE"):
        assert value not in audit


async def test_screenshot_command_writes_a_png_of_the_rendered_page(tmp_path, scanner, chromium):
    out = tmp_path / "shots" / "dashboard.png"
    result = await screenshot(out, browser=chromium, scanner=scanner)
    png = out.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    assert result["title"] == TITLE and result["bars"] >= 20 and result["width"] == 1400
    assert result["hosts"] == ["127.0.0.1"]


def test_nothing_in_the_product_or_the_tests_installs_packages():
    """Tests run on people's machines: a command list starting with a package manager, or `-m pip`, is refused."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    installer = re.compile(r"""\[\s*["'](?:apt-get|apt|dnf|yum|apk|playwright)["']|["']-m["'],\s*["']pip["']""")
    offenders = [str(path.relative_to(root)) for folder in ("slack_pii", "tests") for path in (root / folder).rglob("*.py")
                 if installer.search(path.read_text(encoding="utf-8"))]
    assert offenders == []
