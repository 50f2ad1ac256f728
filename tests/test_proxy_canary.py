"""The canary: known PII pushed through every path must appear nowhere in logs, the audit table, /metrics or
error bodies. (Forwarded messages and Slack's own answers may carry what the policy lets through; that is the
job. What we write ourselves may not.)"""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from slack_pii.app import build_app
from slack_pii.services import SERVICES
from slack_pii.logs import AccessLogger, JsonFormatter
from tests.factories import AWS_KEY, CARD, EMAIL, IBAN, PHONE, SLACK_BOT, SSN, section
from tests.slack_double import double, proxy_settings  # noqa: F401 - fixtures

TOKEN = "xoxb-9999999999-8888888888-CanaryCanaryCanaryCanary"
HOOK_SECRET = "CanaryHookSecret0123456789"
HOOK = f"/services/T0CANARY01/B0CANARY02/{HOOK_SECRET}"
CANARIES = (CARD, SSN, EMAIL, PHONE, SLACK_BOT, AWS_KEY, IBAN, TOKEN, HOOK_SECRET,
            CARD.replace(" ", ""), SSN.replace("-", ""))
ALL_PII = f"card {CARD} ssn {SSN} mail {EMAIL} call {PHONE} iban {IBAN}"


@pytest.fixture
async def served(proxy_settings, scanner):
    """The proxy as `serve` runs it: AppRunner with our access logger."""
    runner = web.AppRunner(build_app(proxy_settings, scanner=scanner), access_log_class=AccessLogger,
                           access_log=logging.getLogger("slack_pii.access"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", runner.app
    await runner.cleanup()


async def test_known_pii_never_reaches_logs_audit_metrics_or_error_bodies(served, double, caplog):
    caplog.set_level(logging.DEBUG)
    base, app = served
    error_bodies: list[str] = []
    client = AsyncWebClient(token=TOKEN, base_url=f"{base}/api/")

    async def raw(path, body: bytes, content_type="application/json", method="POST"):
        async with aiohttp.ClientSession() as session:
            async with session.request(method, base + path, data=body, headers={
                    "Content-Type": content_type, "Authorization": f"Bearer {TOKEN}"}) as response:
                text = await response.text(errors="replace")
                if response.status != 200 or '"ok": false' in text or '"ok":false' in text:
                    error_bodies.append(text)
                return response.status

    # redact: JSON, form with JSON-string blocks, query string, multipart, unfurls, webhooks (JSON and form)
    await client.chat_postMessage(channel="C1", text=ALL_PII, blocks=[section(ALL_PII)],
                                  attachments=[{"fallback": ALL_PII, "fields": [{"title": "t", "value": ALL_PII}]}])
    await client.api_call("chat.postMessage", data={"channel": "C1", "text": ALL_PII,
                                                    "blocks": json.dumps([section(ALL_PII)])})
    await client.conversations_setPurpose(channel="C1", purpose=ALL_PII)
    await client.chat_unfurl(channel="C1", ts="1.1", unfurls={"https://x.test": {"text": ALL_PII}})
    form = aiohttp.FormData()
    form.add_field("channels", "C1")
    form.add_field("initial_comment", ALL_PII)
    form.add_field("file", ALL_PII.encode(), filename="f.txt")
    multipart = form()
    await raw("/api/files.upload", await multipart.as_bytes(), multipart.content_type)
    await raw(HOOK, json.dumps({"text": ALL_PII}).encode())
    await raw(HOOK, b"payload=" + aiohttp.helpers.quote(json.dumps({"text": ALL_PII}), safe="").encode(),
              "application/x-www-form-urlencoded")
    # block: credentials, through the SDK, raw JSON and a webhook
    for text in (f"{ALL_PII} {SLACK_BOT}", f"{ALL_PII} {AWS_KEY}"):
        with pytest.raises(SlackApiError) as raised:
            await client.chat_postMessage(channel="C1", text=text)
        error_bodies.append(json.dumps(raised.value.response.data))
    await raw(HOOK, json.dumps({"text": f"{ALL_PII} {AWS_KEY}"}).encode())
    # bad input holding PII
    await raw("/api/chat.postMessage", f'{{"channel":"C1","text":"{ALL_PII}'.encode())
    await raw("/api/chat.postMessage", json.dumps({"channel": "C1", "text": ALL_PII * 700}).encode())
    await raw("/api/chat.postMessage", json.dumps({"channel": ["C1"], "text": ALL_PII}).encode())
    await raw("/api/chat.postMessage", json.dumps({"text": {"nested": ALL_PII}}).encode())
    await raw("/api/chat.postMessage", ALL_PII.encode("latin-1") + b"\xff", "application/x-www-form-urlencoded")
    await raw("/api/chat.postMessage", f"--b\r\n{ALL_PII}".encode(), "multipart/form-data; boundary=b")
    await raw(HOOK, ALL_PII.encode())
    await raw(f"/api/{SSN}", b"{}")
    await raw(f"/api/chat.postMessage.{CARD.replace(' ', '')}", b"{}")
    await raw(f"/somewhere/{SSN}?card={CARD}", b"{}", method="GET")
    await raw(f"/services/{SSN}/{CARD}", b"{}")
    # pass-through with PII in the body and query; Slack refusing with 429 and failing with 5xx
    await raw(f"/api/users.profile.set?name={SSN}", json.dumps({"profile": {"phone": PHONE}}).encode())
    double.answer("chat.postMessage", status=429, headers={"Retry-After": "3"})
    await raw("/api/chat.postMessage", json.dumps({"channel": "C1", "text": ALL_PII}).encode())
    double.answer("chat.postMessage", status=500)
    await raw("/api/chat.postMessage", json.dumps({"channel": "C1", "text": ALL_PII}).encode())

    assert len(double.requests) >= 10  # the paths above really ran
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as response:
        metrics_text = await response.text()
    audit_rows = json.dumps(await app[SERVICES].store.audit_events())
    # The client library logs request bodies at DEBUG: proof that the capture sees PII when it is logged.
    assert any(SSN in r.getMessage() for r in caplog.records if r.name.startswith("slack_sdk"))
    ours = [r for r in caplog.records if not r.name.startswith("slack_sdk")]
    assert any(r.name == "slack_pii.access" for r in ours) and any(r.name == "slack_pii.webapi" for r in ours)
    formatter = JsonFormatter()
    log_text = "\n".join(formatter.format(r) for r in ours) + "\n".join(r.getMessage() for r in ours)
    assert len(error_bodies) >= 10 and "pii_blocked" in "".join(error_bodies)
    for canary in CANARIES:
        for where, text in (("logs", log_text), ("audit", audit_rows), ("metrics", metrics_text),
                            ("error bodies", "\n".join(error_bodies))):
            assert canary not in text, f"{canary[:4]}… leaked into {where}"
