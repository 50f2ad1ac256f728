"""The served application: health, readiness, metrics, the local sink end to end, `serve` and its settings."""

from __future__ import annotations

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from slack_pii.services import SERVICES
from slack_pii.cli import build_parser
from slack_pii.config import Settings, settings_help
from tests.conftest import TEST_KEY
from tests.factories import CARD, EMAIL
from tests.slack_double import double, proxy, proxy_settings, start_proxy  # noqa: F401 - fixtures


@pytest.fixture
async def local_proxy(tmp_path, scanner):
    """No upstream and no Slack credentials: the built-in sink."""
    server = await start_proxy(Settings(data_dir=tmp_path, secret_key=TEST_KEY), scanner)
    yield server
    await server.close()


async def get_json(server, path):
    async with aiohttp.ClientSession() as session, session.get(server.make_url(path)) as response:
        return response.status, await response.json()


async def test_healthz_is_cheap_json(proxy):
    assert await get_json(proxy, "/healthz") == (200, {"ok": True, "status": "up"})


async def test_readyz_names_the_upstream_and_config_version(proxy, double, scanner):
    status, body = await get_json(proxy, "/readyz")
    assert status == 200 and body["ok"] is True
    assert body["upstream"] == double.api_url and body["webhook_upstream"] == double.base_url
    assert body["config_version"] == scanner.config_version
    assert "warning" not in body


async def test_readyz_says_loudly_when_forwarding_to_the_local_sink(local_proxy):
    status, body = await get_json(local_proxy, "/readyz")
    assert status == 200 and body["upstream"] == "local sink" and body["webhook_upstream"] == "local sink"
    assert "LOCAL SINK" in body["warning"]


async def test_local_sink_answers_like_slack_and_stores_what_slack_would_have_received(local_proxy):
    client = AsyncWebClient(token="xoxb-local", base_url=str(local_proxy.make_url("/api/")))
    response = await client.chat_postMessage(channel="C0TEST", text=f"card {CARD}, mail {EMAIL}")
    assert response["ok"] and response["channel"] == "C0TEST" and response["ts"]
    assert CARD not in response["message"]["text"] and "1111" in response["message"]["text"]
    assert (await client.auth_test())["ok"]
    assert (await client.conversations_info(channel="C0TEST"))["channel"]["id"] == "C0TEST"
    stored = await local_proxy.app[SERVICES].store.sink_messages()
    assert [row["method"] for row in stored] == ["chat.postMessage", "auth.test", "conversations.info"]
    assert CARD not in stored[0]["payload"]["text"] and EMAIL in stored[0]["payload"]["text"]  # email: warn
    assert "xoxb-local" not in str(stored)  # tokens are kept as fingerprints only


async def test_metrics_count_requests_findings_and_scans(proxy):
    client = AsyncWebClient(token="xoxb-m", base_url=str(proxy.make_url("/api/")))
    await client.chat_postMessage(channel="C1", text=f"card {CARD}")
    await client.api_call("users.list")
    async with aiohttp.ClientSession() as session, session.get(proxy.make_url("/metrics")) as response:
        text = await response.text()
    assert 'slack_pii_requests_total{action="redact",method="chat.postMessage"} 1.0' in text
    assert 'slack_pii_requests_total{action="passthrough",method="other"} 1.0' in text
    assert 'slack_pii_findings_total{entity_type="CREDIT_CARD"} 1.0' in text
    assert "slack_pii_scan_seconds_count 1.0" in text and "slack_pii_held_messages 0.0" in text


async def test_store_is_closed_on_shutdown(tmp_path, double, scanner):
    server = await start_proxy(Settings(data_dir=tmp_path, secret_key=TEST_KEY, upstream_url=double.api_url),
                               scanner)
    store = server.app[SERVICES].store
    assert store.is_open
    await server.close()
    assert not store.is_open
    assert not (tmp_path / "slack-pii.sqlite3-wal").exists() or (tmp_path / "slack-pii.sqlite3-wal").stat().st_size == 0


def test_every_setting_and_serve_flag_is_in_help():
    parser = build_parser()
    top = parser.format_help()
    for env, _default, _help in settings_help():
        assert env in top
    serve_help = parser._subparsers._group_actions[0].choices["serve"].format_help()
    assert "--host" in serve_help and "--port" in serve_help
    audit_help = parser._subparsers._group_actions[0].choices["audit"].format_help()
    for flag in ("--format", "--since", "--limit"):
        assert flag in audit_help


async def test_curl_style_webhook_to_the_local_sink_is_stored_redacted(local_proxy):
    """`curl -d '{...}'` labels JSON as a form; Slack reads it as JSON, and so do the proxy and the sink."""
    async with aiohttp.ClientSession() as session:
        async with session.post(local_proxy.make_url("/services/T0000000/B0000000/XXXXXXXXXXXXXXXX"),
                                data=b'{"text":"ssn 078-05-1123"}',
                                headers={"Content-Type": "application/x-www-form-urlencoded"}) as response:
            assert (response.status, await response.text()) == (200, "ok")
    [row] = await local_proxy.app[SERVICES].store.sink_messages()
    assert row["method"] == "webhook" and row["payload"] == {"text": "ssn [US_SSN]"}


async def test_graceful_shutdown_lets_in_flight_requests_finish(proxy_settings, double, scanner):
    import asyncio

    from aiohttp import web

    from slack_pii.app import build_app

    runner = web.AppRunner(build_app(proxy_settings, scanner=scanner), shutdown_timeout=10)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    store = runner.app[SERVICES].store
    double.answer("chat.postMessage", delay=0.5)
    client = AsyncWebClient(token="xoxb-s", base_url=f"http://{host}:{port}/api/")
    in_flight = asyncio.create_task(client.chat_postMessage(channel="C1", text=f"card {CARD}"))
    deadline = asyncio.get_running_loop().time() + 60
    while not double.received("chat.postMessage"):
        assert asyncio.get_running_loop().time() < deadline, "the call never reached the Slack double"
        await asyncio.sleep(0.01)
    await runner.cleanup()  # stop accepting, wait for the handler, then close upstream and store
    response = await in_flight
    assert response["ok"] and response["message"]["text"].endswith("1111")
    assert not store.is_open
