"""A fake Socket Mode endpoint on the Slack double: a loopback websocket that says hello, delivers envelopes and
records the acks the app sends back (what Slack's wss://wss-primary.slack.com does, minus TLS)."""

from __future__ import annotations

import asyncio
import json

from aiohttp import WSMsgType, web

from tests.slack_double import SlackDouble

WS_PATH = "/link"


class FakeSocketMode:
    """Attach to a SlackDouble before it starts; `deliver(...)` queues envelopes for the next connection."""

    def __init__(self, double: SlackDouble):
        self.double = double
        self.envelopes: asyncio.Queue[dict] = asyncio.Queue()
        self.acks: list[dict] = []
        self.acked = asyncio.Event()
        self.connections = 0
        double.app.router.add_get(WS_PATH, self._ws)

    def script_connections_open(self, double: SlackDouble) -> None:
        """apps.connections.open answers with our loopback websocket URL (call once the double listens)."""
        url = double.base_url.replace("http://", "ws://") + WS_PATH
        double.answer("apps.connections.open", json_body={"ok": True, "url": url}, times=5)

    def deliver(self, envelope_id: str, kind: str, payload: dict) -> None:
        self.envelopes.put_nowait({"envelope_id": envelope_id, "type": kind, "payload": payload,
                                   "accepts_response_payload": kind != "events_api", "retry_attempt": 0,
                                   "retry_reason": ""})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1,
                                      "connection_info": {"app_id": "A0APP"},
                                      "debug_info": {"host": "fake", "approximate_connection_time": 3600}}))
        sender = asyncio.create_task(self._send(ws))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    data = json.loads(message.data)
                    if "envelope_id" in data:
                        self.acks.append(data)
                        self.acked.set()
        finally:
            sender.cancel()
        return ws

    async def _send(self, ws: web.WebSocketResponse) -> None:
        while True:
            envelope = await self.envelopes.get()
            await ws.send_str(json.dumps(envelope))
