"""Shared parts of the Bolt app tests: the proxy with the Bolt app on a loopback port, a Slack double behind it,
and Slack-shaped payloads signed with `SignatureVerifier.generate_signature` like Slack signs them."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from aiohttp.test_utils import TestServer
from slack_sdk.signature import SignatureVerifier

from slack_pii.slackapp import blocks
from slack_pii.app import build_app
from slack_pii.services import SERVICES
from slack_pii.slackapp.service import BOLT, BoltService
from slack_pii.config import Settings
from tests.conftest import TEST_KEY
from tests.slack_double import SlackDouble

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
USER, OTHER, CHANNEL, TEAM = "U0SENDER1", "U0OTHER22", "C0GENERAL", "T0TEAM001"
BOT_USER = "U0BOTUSER"

DEADLINE_SECONDS = 60.0  # listeners finish in milliseconds; this only bounds a hang on a loaded machine
_ids = itertools.count(1)


def signed_headers(body: str, *, secret: str = SECRET, timestamp: int | None = None,
                   content_type: str = "application/json") -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature, "Content-Type": content_type}


def event_body(event: dict, *, event_id: str | None = None) -> str:
    return json.dumps({"token": "legacy", "team_id": TEAM, "api_app_id": "A0APP", "type": "event_callback",
                       "event_id": event_id or f"Ev{next(_ids):08d}", "event_time": int(time.time()),
                       "event": event})


def message_event(text: str, *, user: str = USER, ts: str | None = None, **extra) -> dict:
    return {"type": "message", "channel": CHANNEL, "user": user, "text": text,
            "ts": ts or f"1700000100.{next(_ids):06d}", "channel_type": "channel", **extra}


def command_body(text: str, *, response_url: str = "") -> str:
    return urlencode({"token": "legacy", "team_id": TEAM, "channel_id": CHANNEL, "channel_name": "general",
                      "user_id": USER, "user_name": "sender", "command": "/safe", "text": text,
                      "api_app_id": "A0APP", "response_url": response_url, "trigger_id": "1.2.trigger"})


def interactive_body(payload: dict) -> str:
    return urlencode({"payload": json.dumps(payload)})


def block_action(action_id: str, value: str, *, response_url: str, user: str = USER) -> dict:
    return {"type": "block_actions", "team": {"id": TEAM}, "user": {"id": user}, "api_app_id": "A0APP",
            "token": "legacy", "trigger_id": f"{next(_ids)}.trigger", "response_url": response_url,
            "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": CHANNEL,
                          "is_ephemeral": True},
            "channel": {"id": CHANNEL}, "actions": [{"type": "button", "action_id": action_id, "value": value,
                                                     "block_id": "choices", "action_ts": "1700000001.1"}]}


def view_submission(callback_id: str, values: dict, *, private_metadata: str = "", user: str = USER) -> dict:
    return {"type": "view_submission", "team": {"id": TEAM}, "user": {"id": user}, "api_app_id": "A0APP",
            "token": "legacy", "trigger_id": "9.trigger",
            "view": {"id": "V0VIEW", "type": "modal", "callback_id": callback_id,
                     "private_metadata": private_metadata, "state": {"values": values}}}


def shortcut(kind: str, **extra) -> dict:
    callback = "send_safely_global" if kind == "shortcut" else "send_safely_message"
    return {"type": kind, "team": {"id": TEAM}, "user": {"id": USER}, "api_app_id": "A0APP", "token": "legacy",
            "callback_id": callback, "trigger_id": "5.trigger", **extra}


def function_executed(inputs: dict) -> dict:
    return {"type": "function_executed",
            "function": {"id": "Fn0SAFE", "callback_id": "send_safely", "title": "Send safely"},
            "inputs": inputs, "function_execution_id": f"Fx{next(_ids):08d}", "workflow_execution_id": "Wx1",
            "event_ts": "1700000200.000100", "bot_access_token": "xwfp-function-token"}


@dataclass
class Harness:
    server: TestServer
    double: SlackDouble
    session: aiohttp.ClientSession

    @property
    def bolt(self) -> BoltService:
        return self.server.app[BOLT]

    @property
    def store(self):
        return self.server.app[SERVICES].store

    @property
    def url(self) -> str:
        return str(self.server.make_url("/slack/events"))

    @property
    def response_url(self) -> str:
        return f"{self.double.base_url}/services/response/T0TEAM001/1"

    async def send(self, body: str, *, content_type: str = "application/json", headers: dict | None = None,
                   settle: bool = True) -> aiohttp.ClientResponse:
        """POST a signed request; with `settle`, wait (with a deadline) until the listeners it started have
        finished, so what they sent to the Slack double is all there."""
        hdrs = headers if headers is not None else signed_headers(body, content_type=content_type)
        response = await self.session.post(self.url, data=body.encode(), headers=hdrs)
        await response.read()
        if settle:
            await self.settle()
        return response

    async def settle(self) -> None:
        await asyncio.wait_for(self.bolt.drain(), DEADLINE_SECONDS)

    async def event(self, event: dict, **kw) -> aiohttp.ClientResponse:
        return await self.send(event_body(event, **kw))

    async def interact(self, payload: dict) -> aiohttp.ClientResponse:
        return await self.send(interactive_body(payload), content_type="application/x-www-form-urlencoded")

    def calls(self, method: str) -> list[dict]:
        return [r.args() for r in self.double.received(method)]

    def tokens(self, method: str) -> list[str]:
        return [r.headers.get("Authorization", "") for r in self.double.received(method)]


async def start_harness(tmp_path, scanner, *, double: SlackDouble | None = None, before_start=None,
                        clock=time.time, runner: dict | None = None, **overrides) -> Harness:
    """The proxy (with the Bolt app) in front of a started Slack double; `before_start(double)` runs once the
    double is listening and before the proxy starts (e.g. to script apps.connections.open). `runner` goes to
    aiohttp's AppRunner (e.g. serve's own access logger)."""
    double = await (double or SlackDouble()).start()
    if before_start is not None:
        before_start(double)
    double.answer("auth.test", json_body={"ok": True, "user_id": BOT_USER, "bot_id": "B0BOT", "team_id": TEAM,
                                          "user": "send-safely", "team": "Test"})
    values = dict(data_dir=tmp_path, secret_key=TEST_KEY, upstream_url=double.api_url, slack_bot_token=BOT_TOKEN,
                  slack_signing_secret=SECRET, watch_config=False)
    values.update(overrides)
    settings = Settings(**values)
    server = TestServer(build_app(settings, scanner=scanner, clock=clock), host="127.0.0.1", port=0)
    await server.start_server(**(runner or {}))
    return Harness(server, double, aiohttp.ClientSession())


async def stop_harness(h: Harness) -> None:
    await h.session.close()
    await h.server.close()
    await h.double.stop()


def buttons(body: dict) -> dict[str, str]:
    """action_id -> value of every button in a message body (blocks may be a JSON string in form calls)."""
    found = {}
    for block in body.get("blocks") or []:
        for element in block.get("elements", []):
            if element.get("type") == "button":
                found[element["action_id"]] = element["value"]
    return found


def assert_renders(body: dict, surface: str = "message") -> None:
    blocks.assert_renders(body, surface=surface)
