"""A Slack double: an aiohttp server on a free loopback port that records every request it gets.

Like bolt's mock_web_api_server, minus the fixed port and the thread. By default it answers like Slack
(`ok`, `channel`, `ts`, `message`); `answer(...)` queues a scripted reply for a method: a status with headers
(429 + Retry-After, 5xx), custom JSON or raw bytes, or a hang (the proxy's timeout must fire).
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import itertools
import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from slack_pii.config import Settings
from tests.conftest import TEST_KEY


@dataclass
class Recorded:
    method: str  # Web API method, or "webhook"
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip()

    def args(self) -> dict[str, Any]:
        """Arguments as Slack would read them (query + body; blocks/attachments decoded from form strings)."""
        args: dict[str, Any] = dict(self.query)
        if self.content_type == "application/json":
            args.update(json.loads(self.body))
        elif self.content_type == "application/x-www-form-urlencoded":
            args.update(parse_qsl(self.body.decode(), keep_blank_values=True))
            if self.method == "webhook" and "payload" in args:
                args = json.loads(args["payload"])
        elif self.content_type == "multipart/form-data":
            args.update({name: value for name, value in self.parts().items() if isinstance(value, str)})
        for name in ("blocks", "attachments", "files", "unfurls"):
            if isinstance(args.get(name), str):
                args[name] = json.loads(args[name])
        return args

    def parts(self) -> dict[str, str | bytes]:
        """Multipart fields (str) and files (bytes, exactly as received)."""
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + self.body)
        parts: dict[str, str | bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True)
            parts[name] = data if part.get_filename() else data.decode()
        return parts


@dataclass
class Reply:
    status: int = 200
    json_body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    delay: float = 0.0
    reset: bool = False  # drop the connection without answering (the request may have landed)


class _Reset(Exception):
    """A scripted reply that cuts the connection."""


class SlackDouble:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._replies: dict[str, deque[Reply]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self._ts = itertools.count(1)
        self._hang = asyncio.Event()
        self.base_url = ""
        app = web.Application(client_max_size=1024 ** 3)
        app.router.add_route("POST", "/api/{method}", self._api)
        app.router.add_route("GET", "/api/{method}", self._api)
        app.router.add_post("/services/{path:.+}", self._hook)
        self.app = app

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    async def start(self) -> SlackDouble:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        self._hang.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def answer(self, method: str, *, status: int = 200, json_body: Any = None, raw: bytes | None = None,
               headers: dict[str, str] | None = None, hang: bool = False, delay: float = 0.0,
               times: int = 1, reset: bool = False) -> None:
        for _ in range(times):
            self._replies[method].append(Reply(status, json_body, raw, headers or {}, hang, delay, reset))

    def received(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method]

    async def _record(self, request: web.Request, method: str) -> Recorded:
        recorded = Recorded(method, request.path, dict(request.query), dict(request.headers), await request.read())
        self.requests.append(recorded)
        return recorded

    async def _reply(self, method: str, default: Any) -> web.StreamResponse:
        reply = self._replies[method].popleft() if self._replies[method] else None
        if reply is None:
            return web.json_response(default) if not isinstance(default, str) else web.Response(text=default)
        if reply.hang:
            await self._hang.wait()
        if reply.reset:
            raise _Reset()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.raw is None and reply.json_body is None and reply.status == 200:
            return web.json_response(default) if not isinstance(default, str) else web.Response(text=default)
        if reply.raw is not None:
            return web.Response(status=reply.status, body=reply.raw, headers=reply.headers)
        body = reply.json_body if reply.json_body is not None else {"ok": reply.status == 200}
        return web.json_response(body, status=reply.status, headers=reply.headers)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        recorded = await self._record(request, method)
        try:
            return await self._answer_api(method, recorded)
        except _Reset:
            request.transport.abort()
            return web.Response()

    async def _answer_api(self, method: str, recorded: Recorded) -> web.StreamResponse:
        try:
            args = recorded.args()
        except (ValueError, KeyError):
            args = {}
        ts = f"1700000000.{next(self._ts):06d}"
        default: dict[str, Any] = {"ok": True}
        if method.startswith("chat."):
            default = {"ok": True, "channel": args.get("channel"), "ts": ts,
                       "message": {"type": "message", "text": args.get("text", ""), "ts": ts}}
        return await self._reply(method, default)

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        await self._record(request, "webhook")
        return await self._reply("webhook", "ok")



async def start_proxy(settings, scanner):
    """The proxy under test on a free loopback port (aiohttp TestServer); `close()` it when done."""
    from aiohttp.test_utils import TestServer

    from slack_pii.app import build_app

    server = TestServer(build_app(settings, scanner=scanner), host="127.0.0.1", port=0)
    await server.start_server()
    return server


# Fixtures for the proxy tests: `from tests.slack_double import double, proxy, proxy_settings`.

@pytest.fixture
async def double():
    started = await SlackDouble().start()
    yield started
    await started.stop()


@pytest.fixture
def proxy_settings(tmp_path, double):
    return Settings(data_dir=tmp_path, secret_key=TEST_KEY, upstream_url=double.api_url,
                    webhook_upstream_url=double.base_url, upstream_timeout_seconds=2.0,
                    watch_config=False)


@pytest.fixture
async def proxy(proxy_settings, scanner):
    server = await start_proxy(proxy_settings, scanner)
    yield server
    await server.close()
