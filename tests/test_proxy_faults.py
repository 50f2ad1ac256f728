"""Upstream faults and scan failures: nothing silently dropped, nothing sent twice, detection failures fail closed."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from slack_pii.services import SERVICES
from tests.factories import SSN
from tests.slack_double import double, proxy, proxy_settings, start_proxy  # noqa: F401 - fixtures


def client_for(server) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-fault", base_url=str(server.make_url("/api/")))


@pytest.fixture
async def make_proxy(proxy_settings, scanner):
    started = []

    async def make(scanner_override=None, **changes):
        server = await start_proxy(proxy_settings.model_copy(update=changes), scanner_override or scanner)
        started.append(server)
        return server

    yield make
    for server in started:
        await server.close()


def upstream_errors(server, kind: str) -> float:
    return server.app[SERVICES].metrics.registry.get_sample_value("slack_pii_upstream_errors_total", {"kind": kind}) or 0


async def test_429_on_a_post_goes_back_with_retry_after_and_is_not_resent(proxy, double):
    double.answer("chat.postMessage", status=429, headers={"Retry-After": "7"},
                  json_body={"ok": False, "error": "ratelimited"})
    with pytest.raises(SlackApiError) as raised:
        await client_for(proxy).chat_postMessage(channel="C1", text="hello")
    response = raised.value.response
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response["error"] == "ratelimited"
    assert len(double.received("chat.postMessage")) == 1


async def test_429_on_a_read_with_a_short_retry_after_is_retried(proxy, double):
    double.answer("conversations.info", status=429, headers={"Retry-After": "0"})
    response = await client_for(proxy).conversations_info(channel="C1")
    assert response["ok"] and len(double.received("conversations.info")) == 2


async def test_429_on_a_read_with_a_long_retry_after_goes_back(proxy, double):
    double.answer("conversations.info", status=429, headers={"Retry-After": "30"})
    with pytest.raises(SlackApiError) as raised:
        await client_for(proxy).conversations_info(channel="C1")
    assert raised.value.response.status_code == 429 and raised.value.response.headers["Retry-After"] == "30"
    assert len(double.received("conversations.info")) == 1


async def test_5xx_is_passed_through_and_not_resent(proxy, double):
    double.answer("chat.postMessage", status=503, raw=b"upstream maintenance", headers={"X-Slack-Req-Id": "r5"})
    with pytest.raises(SlackApiError) as raised:
        await client_for(proxy).chat_postMessage(channel="C1", text=f"ssn {SSN}")
    assert raised.value.response.status_code == 503 and raised.value.response.headers["X-Slack-Req-Id"] == "r5"
    assert len(double.received("chat.postMessage")) == 1
    assert upstream_errors(proxy, "status_5xx") == 1


async def test_upstream_timeout_is_a_504_and_the_post_is_not_resent(make_proxy, double):
    server = await make_proxy(upstream_timeout_seconds=0.3)
    double.answer("chat.postMessage", hang=True)
    with pytest.raises(SlackApiError) as raised:
        await client_for(server).chat_postMessage(channel="C1", text="hello")
    assert raised.value.response.status_code == 504 and raised.value.response["error"] == "upstream_timeout"
    assert len(double.received("chat.postMessage")) == 1
    [row] = await server.app[SERVICES].store.audit_events()
    assert row["status"] == 504 and row["action"] == "allow"


async def test_refused_connection_is_retried_then_a_502(make_proxy):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = await make_proxy(upstream_url=f"http://127.0.0.1:{port}/api/", upstream_retries=2)
    with pytest.raises(SlackApiError) as raised:
        await client_for(server).chat_postMessage(channel="C1", text="hello")
    assert raised.value.response.status_code == 502 and raised.value.response["error"] == "upstream_unreachable"
    assert upstream_errors(server, "connection") == 3  # the first try and two retries


class BrokenScanner:
    """Wraps the real scanner; its scan raises (quoting the text, to prove that never reaches a log) or hangs."""

    def __init__(self, real, gate: threading.Event | None = None):
        self.real, self.gate = real, gate

    def __getattr__(self, name):
        return getattr(self.real, name)

    def scan(self, payload, **kwargs):
        if self.gate is not None:
            self.gate.wait(5)
            return self.real.scan(payload, **kwargs)
        raise RuntimeError(f"detector exploded on {payload.get('text')}")


async def test_scan_failure_fails_closed_without_contacting_slack(make_proxy, double, scanner, caplog):
    server = await make_proxy(BrokenScanner(scanner))
    with pytest.raises(SlackApiError) as raised:
        await client_for(server).chat_postMessage(channel="C1", text=f"ssn {SSN}")
    assert raised.value.response["error"] == "pii_scan_failed" and SSN not in json.dumps(raised.value.response.data)
    assert double.requests == []
    [row] = await server.app[SERVICES].store.audit_events()
    assert (row["name"], row["action"], row["detail"]["reason"]) == ("scan_failed", "block", "RuntimeError")
    assert SSN not in caplog.text


async def test_scan_over_its_time_budget_fails_closed(make_proxy, double, scanner):
    gate = threading.Event()
    server = await make_proxy(BrokenScanner(scanner, gate), scan_timeout_seconds=0.2)
    try:
        with pytest.raises(SlackApiError) as raised:
            await client_for(server).chat_postMessage(channel="C1", text="hello")
        assert raised.value.response["error"] == "pii_scan_failed"
        assert double.requests == []
        [row] = await server.app[SERVICES].store.audit_events()
        assert row["detail"]["reason"] == "timeout"
    finally:
        gate.set()


async def test_on_scan_error_forward_sends_the_original(make_proxy, double, scanner):
    server = await make_proxy(BrokenScanner(scanner), on_scan_error="forward")
    response = await client_for(server).chat_postMessage(channel="C1", text="hello")
    assert response["ok"] and double.received("chat.postMessage")[0].args()["text"] == "hello"
    [row] = await server.app[SERVICES].store.audit_events()
    assert (row["name"], row["action"], row["status"]) == ("scan_failed", "forward", 200)
