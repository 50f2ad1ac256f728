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
        self.workspace: FakeWorkspace | None = None  # serves conversations.*, chat.update/delete when set
        app = web.Application(client_max_size=1024 ** 3)
        app.router.add_route("POST", "/api/{method}", self._api)
        app.router.add_route("GET", "/api/{method}", self._api)
        app.router.add_post("/services/{path:.+}", self._hook)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        self.hosted: dict[str, bytes] = {}  # files the double serves at url_private (Bolt file_share tests)
        self._file_ids = itertools.count(1)
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
        elif method == "files.getUploadURLExternal":
            file_id = f"F{next(self._file_ids):08d}"
            default = {"ok": True, "file_id": file_id, "upload_url": f"{self.base_url}/upload/v1/{file_id}"}
        elif method == "files.completeUploadExternal":
            files = args.get("files") if isinstance(args.get("files"), list) else []
            default = {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title") or ""} for f in files]}
        elif method == "files.upload":
            default = {"ok": True, "file": {"id": f"F{next(self._file_ids):08d}", "name": args.get("filename", "")}}
        if self.workspace is not None and method in self.workspace.methods:
            answer = self.workspace.handle(method, args, recorded.headers.get("Authorization", "")[7:])
            if isinstance(answer, Reply):  # a scripted failure from the workspace (a 429 mid-way)
                self._replies[method].appendleft(answer)
            else:
                default = answer
        return await self._reply(method, default)

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        """Slack's file host: the bytes of an upload URL (recorded as method "upload"), answered in plain text."""
        recorded = await self._record(request, "upload")
        return await self._reply("upload", f"OK - {len(recorded.body)}")

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """url_private: the hosted file, for a bot token only (recorded as method "download")."""
        await self._record(request, "download")
        data = self.hosted.get(request.match_info["file_id"])
        if data is None or not request.headers.get("Authorization", "").startswith("Bearer xoxb-"):
            return web.Response(status=404, text="not found")
        return web.Response(body=data, content_type="application/octet-stream")

    def host_file(self, file_id: str, name: str, data: bytes) -> str:
        self.hosted[file_id] = data
        return f"{self.base_url}/files-pri/{file_id}/{name}"

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        await self._record(request, "webhook")
        return await self._reply("webhook", "ok")



class FakeWorkspace:
    """Conversations and their messages behind the double: conversations.list/history/replies with cursor pages
    (`limit`), users.list, auth.test, and chat.update/chat.delete that change what history returns.

    `tokens` maps a token to the user it belongs to ("admin" may delete anything, as Slack lets admins do);
    chat.update by anyone but the author answers cant_update_message, as Slack does. `fail` scripts a reply for
    the n-th call of a method (1-based), e.g. `{("conversations.history", 2): Reply(429, headers=...)}`.
    """

    methods = frozenset({"auth.test", "conversations.list", "conversations.history", "conversations.replies",
                         "users.list", "chat.update", "chat.delete"})

    def __init__(self, channels: list[dict], messages: dict[str, list[dict]], users: list[dict] | None = None,
                 tokens: dict[str, str] | None = None, team: str = "T0ACME0001"):
        self.channels, self.messages, self.users = channels, messages, users or []
        self.tokens, self.team = tokens or {}, team
        self.fail: dict[tuple[str, int], Reply] = {}
        self.calls: dict[str, int] = defaultdict(int)

    def handle(self, method: str, args: dict[str, Any], token: str) -> dict | Reply:
        self.calls[method] += 1
        scripted = self.fail.get((method, self.calls[method]))
        if scripted is not None:
            return scripted
        if method == "auth.test":
            return {"ok": True, "team_id": self.team, "url": "https://acme.slack.com/",
                    "user_id": self.tokens.get(token)}
        if method == "conversations.list":
            return self._page(self.channels, args, "channels")
        if method == "users.list":
            return self._page(self.users, args, "members")
        if method in ("chat.update", "chat.delete"):
            return self._change(method, args, token)
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or 9e18)
        inclusive = str(args.get("inclusive")).lower() in ("true", "1")

        def in_window(m: dict) -> bool:  # Slack: both ends exclusive unless inclusive
            ts = float(m["ts"])
            return oldest <= ts <= latest if inclusive else oldest < ts < latest

        history = self.messages.get(args.get("channel"), [])
        if method == "conversations.history":
            top = [m for m in history if in_window(m) and (m.get("thread_ts") in (None, m["ts"])
                                                           or m.get("subtype") == "thread_broadcast")]
            return self._page(sorted(top, key=lambda m: float(m["ts"]), reverse=True), args, "messages")
        thread = [m for m in history if (m["ts"] == args.get("ts") or m.get("thread_ts") == args.get("ts"))
                  and in_window(m)]
        if not any(m["ts"] == args.get("ts") for m in history):
            return {"ok": False, "error": "thread_not_found"}
        return self._page(sorted(thread, key=lambda m: float(m["ts"])), args, "messages")

    @staticmethod
    def _page(items: list, args: dict[str, Any], key: str) -> dict:
        start, limit = int(args.get("cursor") or 0), int(args.get("limit") or 100)
        more = start + limit < len(items)
        return {"ok": True, key: items[start:start + limit], "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _change(self, method: str, args: dict[str, Any], token: str) -> dict:
        history = self.messages.get(args.get("channel"), [])
        found = [m for m in history if m["ts"] == args.get("ts")]
        if not found:
            return {"ok": False, "error": "message_not_found"}
        who, message = self.tokens.get(token), found[0]
        if who is None:
            return {"ok": False, "error": "invalid_auth"}
        if method == "chat.delete":
            if who not in ("admin", message.get("user")):
                return {"ok": False, "error": "cant_delete_message"}
            history.remove(message)
            return {"ok": True, "channel": args["channel"], "ts": message["ts"]}
        if who != message.get("user"):
            return {"ok": False, "error": "cant_update_message"}
        for name in ("text", "blocks", "attachments"):
            if name in args:
                message[name] = args[name]
        message["edited"] = {"user": who, "ts": "1800000000.000000"}
        return {"ok": True, "channel": args["channel"], "ts": message["ts"], "text": message.get("text", "")}


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
