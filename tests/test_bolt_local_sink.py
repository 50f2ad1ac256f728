"""The Bolt app against the built-in local sink (SLACK_PII_UPSTREAM_URL=local): the workflow step gets a stable
fake permalink, and Socket Mode says plainly that it needs real Slack instead of failing obscurely."""

from __future__ import annotations

import json

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from slack_pii.services import SERVICES
from tests.bolt_support import CHANNEL, USER, function_executed, start_harness, stop_harness
from tests.factories import CARD

APP_TOKEN = "xapp-1-A0APP-1234567890-0123456789abcdef0123456789abcdef"


async def test_workflow_step_fills_message_link_with_the_sinks_permalink(tmp_path, scanner):
    h = await start_harness(tmp_path, scanner, upstream_url="local")
    try:
        await h.event(function_executed({"message": f"refund {CARD}", "channel_id": CHANNEL, "user_id": USER}))
        calls = {row["method"]: row["payload"] for row in await h.store.sink_messages()}
        outputs = calls["functions.completeSuccess"]["outputs"]
        outputs = outputs if isinstance(outputs, dict) else json.loads(outputs)  # a form field holds JSON
        ts = outputs["message_ts"]
        assert ts and outputs["verdict"] == "redact"
        assert outputs["message_link"] == f"https://local-sink.invalid/archives/{CHANNEL}/p{ts.replace('.', '')}"
        assert h.double.received() == []  # nothing went to the (unused) double: the sink answered everything
    finally:
        await stop_harness(h)


async def test_socket_mode_against_the_sink_is_not_started_and_says_why(tmp_path, scanner, caplog):
    h = await start_harness(tmp_path, scanner, upstream_url="local", slack_app_token=APP_TOKEN,
                            slack_signing_secret=None)
    try:
        assert "Socket Mode cannot run against the local sink" in caplog.text
        assert (await h.session.get(h.server.make_url("/healthz"))).status == 200  # the proxy itself runs
        # and anyone asking the sink for a websocket URL gets an honest refusal, not a URL that goes nowhere
        client = AsyncWebClient(base_url=h.server.app[SERVICES].sink.api_url)
        with pytest.raises(SlackApiError) as refused:
            await client.apps_connections_open(app_token=APP_TOKEN)
        assert refused.value.response["error"] == "socket_mode_unavailable"
        assert "needs real Slack" in refused.value.response["detail"]
    finally:
        await stop_harness(h)
