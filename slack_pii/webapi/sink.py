"""The built-in local sink: an upstream that answers like Slack and keeps what Slack would have received.

It runs as its own small aiohttp app on an ephemeral loopback port, so forwarding to it takes exactly the same
code path as forwarding to Slack. What it stores is already scanned and redacted; tokens are kept as keyed
fingerprints only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from typing import Any

from aiohttp import web

from slack_pii import messages
from slack_pii.store import BaseStore as Store
from slack_pii.keys import fingerprint

log = logging.getLogger("slack_pii.sink")

TEAM_ID, BOT_USER, BOT_ID = "T0LOCALSINK", "U0LOCALSINK", "B0LOCALSINK"


class LocalSink:
    """Start with `await sink.start()` (returns nothing; read `api_url`/`hooks_url`), stop with `await sink.stop()`."""

    def __init__(self, store: Store, key: bytes):
        self.store = store
        self.key = key
        self._runner: web.AppRunner | None = None
        self._base = ""
        self._counter = itertools.count(1)
        self.app = web.Application(client_max_size=1024 ** 3)
        self.app.router.add_route("POST", "/api/{method}", self.handle_api)
        self.app.router.add_route("GET", "/api/{method}", self.handle_api)
        self.app.router.add_post("/services/{path:.+}", self.handle_hook)
        self.app.router.add_post("/upload/{file_id}", self.handle_upload)

    @property
    def api_url(self) -> str:
        return f"{self._base}/api/"

    @property
    def hooks_url(self) -> str:
        return self._base

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._base = f"http://{host}:{port}"
        log.info(messages.sink_started(self._base))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _ts(self) -> str:
        return f"{time.time():.0f}.{next(self._counter):06d}"

    async def _arguments(self, request: web.Request) -> tuple[dict[str, Any], str | None]:
        """The call's arguments as Slack would read them, and the token (header, body or query)."""
        args: dict[str, Any] = {k: v for k, v in request.query.items()}
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                args.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for name, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    args[name] = {"filename": value.filename, "size": len(value.file.read())}
                else:
                    args[name] = value
        for name in ("blocks", "attachments", "files", "unfurls"):
            if isinstance(args.get(name), str):
                try:
                    args[name] = json.loads(args[name])
                except json.JSONDecodeError:
                    pass
        token = args.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        return args, token

    async def handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            args, token = await self._arguments(request)
        except ValueError:  # what Slack says to a body it cannot read
            return web.json_response({"ok": False, "error": "invalid_form_data"})
        caller = fingerprint(token, self.key) if token else None
        channel = args.get("channel") or args.get("channel_id")
        answer = self.answer(method, args)
        ts = answer.get("ts") or answer.get("message_ts")
        await self.store.record_sink_message(method, channel, ts, caller, args)
        return web.json_response(answer)

    async def handle_hook(self, request: web.Request) -> web.Response:
        try:
            raw = await request.read()
            if request.content_type == "application/json" or raw.lstrip().startswith(b"{"):
                args = json.loads(raw)
            else:
                args = json.loads((await request.post()).get("payload", "{}"))
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(args, dict):
            return web.Response(status=400, text="invalid_payload")
        await self.store.record_sink_message("webhook", args.get("channel"), self._ts(),
                                             fingerprint(request.path, self.key), args)
        return web.Response(text="ok")

    async def handle_upload(self, request: web.Request) -> web.Response:
        """A file's bytes (files_upload_v2's second step): stored as their size and SHA-256, like Slack says OK."""
        data = await request.read()
        await self.store.record_sink_message("files.upload_url", None, self._ts(), None, {
            "file_id": request.match_info["file_id"], "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        return web.Response(text=f"OK - {len(data)}")

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Slack's success shape for the methods the proxy and the Bolt app call; `{"ok": true}` otherwise.
        Permalinks are stable fakes on local-sink.invalid; apps.connections.open is refused (no websocket here)."""
        channel = args.get("channel") or args.get("channel_id") or "C0LOCALSINK"
        ts = self._ts()
        message = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": ts, "team": TEAM_ID,
                   **{k: args[k] for k in ("text", "blocks", "attachments", "thread_ts") if k in args}}
        if method == "auth.test":
            return {"ok": True, "url": "https://local-sink.invalid/", "team": "Local sink", "user": "slack-pii",
                    "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": False}
        if method in ("chat.postMessage", "chat.meMessage"):
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": ts}
        if method == "chat.update":
            ts = args.get("ts", ts)
            return {"ok": True, "channel": channel, "ts": ts, "text": args.get("text", ""),
                    "message": {**message, "ts": ts}}
        if method == "chat.scheduleMessage":
            return {"ok": True, "channel": channel, "scheduled_message_id": f"Q{next(self._counter):08d}",
                    "post_at": args.get("post_at"), "message": message}
        if method in ("conversations.setTopic", "conversations.setPurpose"):
            field = "topic" if method.endswith("Topic") else "purpose"
            return {"ok": True, "channel": {"id": channel, field: {"value": args.get(field, "")}}}
        if method == "conversations.info":
            return {"ok": True, "channel": {"id": channel, "name": f"local-{channel.lower()}", "is_channel": True,
                                            "is_member": True}}
        if method == "chat.getPermalink":
            message_ts = str(args.get("message_ts") or ts)
            return {"ok": True, "channel": channel,
                    "permalink": f"https://local-sink.invalid/archives/{channel}/p{message_ts.replace('.', '')}"}
        if method == "apps.connections.open":
            # NOTE: an honest refusal rather than a URL: the sink has no websocket, so Socket Mode needs real Slack.
            return {"ok": False, "error": "socket_mode_unavailable",
                    "detail": "Socket Mode needs real Slack: the local sink has no websocket server."}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D0LOCALSINK"}}
        if method == "files.upload":
            return {"ok": True, "file": {"id": f"F{next(self._counter):08d}", "title": args.get("title", "")}}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._counter):08d}"
            return {"ok": True, "file_id": file_id, "upload_url": f"{self._base}/upload/{file_id}"}
        if method == "files.completeUploadExternal":
            files = args.get("files") if isinstance(args.get("files"), list) else []
            return {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title", "")} for f in files
                                          if isinstance(f, dict)]}
        return {"ok": True}
