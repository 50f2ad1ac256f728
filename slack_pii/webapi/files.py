"""File uploads through the sidecar, stopped before Slack has the bytes.

slack_sdk's `files_upload_v2` (and every current client) uploads in three calls: `files.getUploadURLExternal`
(Slack answers a file id and an `upload_url` on its file host), a POST of the bytes to that URL, then
`files.completeUploadExternal`. The proxy forwards the first call and hands back an upload URL of its own,
signed, single-use, expiring and bound to the file id; the bytes come to the proxy, are scanned, and go to
Slack's real URL (as they are, or redacted) or are refused. A later `files.completeUploadExternal` naming a
refused file id gets a Slack-shaped `pii_blocked` (entity types and rule ids, never values). The legacy
`files.upload` (a multipart `file` part, or a `content` argument) is scanned the same way before it is forwarded.

NOTE: tickets and refused ids live in this process's memory: behind several replicas, the upload must come back
to the replica that issued its URL (sticky sessions), or the client gets `invalid_upload_url` and retries.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web

from slack_pii import messages
from slack_pii.detect.files import FileLimits, FileOutcome, FileScan
from slack_pii.keys import fingerprint
from slack_pii.services import SERVICES, Services
from slack_pii.errors import PayloadError
from slack_pii.store.audit import FileScanned
from slack_pii.webapi.codec import UPSTREAM_STATUS, api_error, api_refusal, forward_headers, parse_call, parse_multipart, read_body, relay
from slack_pii.webapi.upstream import UpstreamFailure

log = logging.getLogger("slack_pii.webapi.files")

UPLOAD_PATH = "/files/upload/{file_id}/{ticket}"
REFUSED_TTL_SECONDS = 3600  # how long completeUploadExternal for a refused file id is still refused
MULTIPART_SLACK = 64 * 1024  # multipart framing allowed on top of the file's own size


@dataclass
class Ticket:
    """What an upload URL the proxy handed out stands for. The caller's token is kept (in memory, for the
    ticket's lifetime) only to ask Slack for a new upload URL when label redaction changes the length."""

    file_id: str
    upload_url: str
    filename: str
    length: int | None
    expires: float
    token: str | None
    caller: str | None


@dataclass(frozen=True)
class Refusal:
    entity_types: tuple[str, ...]
    rule_ids: tuple[str, ...]
    reason: str
    expires: float


class FileUploads:
    """The file half of the Web API routes; `WebApi` dispatches to it. The running parts (scanner, store,
    upstream, keys, the file-scan thread, metrics) come from `Services` per request."""

    def __init__(self, webapi, clock: Callable[[], float] = time.time):
        self.webapi = webapi
        self.settings = webapi.settings
        self.clock = clock
        self.limits = FileLimits.from_settings(self.settings)
        self.tickets: dict[str, Ticket] = {}
        self.refused: dict[str, Refusal] = {}
        self.renamed: dict[str, str] = {}  # file id the client knows -> the id Slack got the bytes under

    def add_routes(self, app: web.Application) -> None:
        app[FILE_UPLOADS] = self
        app.router.add_post(UPLOAD_PATH, self.handle_upload)

    # --- files.getUploadURLExternal -----------------------------------------------------------------------

    async def get_upload_url(self, request: web.Request, method: str) -> web.StreamResponse:
        """Forward, then give the caller an upload URL on the proxy instead of Slack's."""
        try:
            call = await parse_call(request, self.settings)
        except PayloadError as exc:
            return api_error(400, exc.code, exc.detail, exc.path)
        services = request.app[SERVICES]
        upstream = services.upstream
        try:
            async with upstream.call(upstream.api_url(method), method_name=method, headers=forward_headers(request),
                                     body=call.raw or None, query=request.query_string,
                                     http_method=request.method) as response:
                status, body = response.status, await response.read()
                content_type = response.headers.get("Content-Type", "application/json")
        except UpstreamFailure as exc:
            code_status, code = UPSTREAM_STATUS[exc.kind]
            return api_error(code_status, code, str(exc))
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not (isinstance(answer, dict) and answer.get("ok") and isinstance(answer.get("upload_url"), str)
                and isinstance(answer.get("file_id"), str)):
            return web.Response(status=status, body=body, headers={"Content-Type": content_type})
        if not self._trusted_upload_url(services, answer["upload_url"]):
            return api_error(502, "upstream_bad_upload_url", messages.upload_url_untrusted())
        length = call.args.get("length")
        ticket = Ticket(answer["file_id"], answer["upload_url"], str(call.args.get("filename") or ""),
                        int(length) if str(length or "").isdigit() else None,
                        self.clock() + self.settings.file_upload_ttl_seconds, call.token,
                        fingerprint(call.token, services.keys.fingerprints) if call.token else None)
        answer["upload_url"] = self._issue(request, services, ticket)
        return web.json_response(answer, status=status)

    def _trusted_upload_url(self, services: Services, url: str) -> bool:
        return trusted_file_url(url, services.upstream.api_base)

    def _issue(self, request: web.Request, services: Services, ticket: Ticket) -> str:
        nonce = secrets.token_urlsafe(16)
        expires = int(ticket.expires)
        self._forget_expired()
        self.tickets[nonce] = ticket
        signed = f"{nonce}.{expires}.{self._sign(services, ticket.file_id, nonce, expires)}"
        return f"{request.scheme}://{request.host}" + UPLOAD_PATH.format(file_id=ticket.file_id, ticket=signed)

    def _sign(self, services: Services, file_id: str, nonce: str, expires: int) -> str:
        mac = hmac.new(services.keys.upload_urls, f"{file_id}.{nonce}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:20]).decode().rstrip("=")

    def _redeem(self, services: Services, file_id: str, signed: str) -> Ticket | None:
        """The ticket behind an upload URL, once: a bad signature, another file id, expiry or reuse gives None."""
        try:
            nonce, expires_text, signature = signed.split(".")
            expires = int(expires_text)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._sign(services, file_id, nonce, expires)) or expires < self.clock():
            return None
        ticket = self.tickets.pop(nonce, None)
        return ticket if ticket is not None and ticket.file_id == file_id else None

    def _forget_expired(self) -> None:
        now = self.clock()
        for nonce in [n for n, t in self.tickets.items() if t.expires < now]:
            del self.tickets[nonce]
        for file_id in [f for f, r in self.refused.items() if r.expires < now]:
            del self.refused[file_id]

    # --- the bytes ---------------------------------------------------------------------------------------------

    async def handle_upload(self, request: web.Request) -> web.StreamResponse:
        """POST of the file to the proxy's upload URL: scan, then forward to Slack's URL or refuse."""
        started = time.perf_counter()
        file_id = request.match_info["file_id"]
        services = request.app[SERVICES]
        ticket = self._redeem(services, file_id, request.match_info["ticket"])
        if ticket is None:
            return web.Response(status=403, text=f"invalid_upload_url: {messages.upload_url_invalid()}")
        try:
            raw = await read_body(request, self.limits.max_bytes + MULTIPART_SLACK)
            fields, data, filename, part_name = [], raw, ticket.filename, "file"
            if request.content_type == "multipart/form-data":
                fields, parts, _ = await parse_multipart(raw, request.headers["Content-Type"])
                if not parts:
                    raise PayloadError("invalid_form_data", messages.invalid_form("multipart"))
                data, filename, part_name = parts[0].data, ticket.filename or parts[0].filename, parts[0].name
        except PayloadError as exc:
            status = 413 if exc.code == "request_too_large" else 400
            return web.Response(status=status, text=f"{exc.code}: {exc.detail}")
        audit = dict(source="webapi", method="files.upload_url", channel=None, caller=ticket.caller, file_id=file_id)
        outcome = await self.scan(services, filename, data, None, audit, started)
        if outcome is None or outcome.verdict == "block":
            refusal = self._refuse(file_id, outcome)
            response = web.Response(status=403, text=f"{refusal[0]}: {refusal[1]}")
            await self._record(services, audit, outcome, response.status, started)
            return response
        body = outcome.redacted if outcome.redacted is not None else data
        target = ticket.upload_url
        if outcome.redacted is not None and ticket.length is not None and len(body) != ticket.length:
            renewed = await self._renew(services, ticket, len(body))
            if renewed is None:
                response = web.Response(status=502, text=f"upstream_error: {messages.upload_renew_failed()}")
                await self._record(services, audit, outcome, response.status, started)
                return response
            self.renamed[file_id], target = renewed
        if fields or request.content_type == "multipart/form-data":
            form = aiohttp.FormData()
            for name, value in fields:
                form.add_field(name, value)
            form.add_field(part_name, body, filename=filename or "file")
            writer = form()
            payload, headers = await writer.as_bytes(), {"Content-Type": writer.content_type}
        else:
            payload, headers = body, {"Content-Type": request.headers.get("Content-Type", "application/octet-stream")}
        try:
            async with services.upstream.call(target, method_name="files.upload_url", headers=headers,
                                                 body=payload) as upstream_response:
                response = await relay(request, upstream_response, {"X-Slack-PII-Action": outcome.verdict})
        except UpstreamFailure as exc:
            status, code = UPSTREAM_STATUS[exc.kind]
            response = web.Response(status=status, text=f"{code}: {exc}")
        await self._record(services, audit, outcome, response.status, started)
        return response

    async def _renew(self, services: Services, ticket: Ticket, length: int) -> tuple[str, str] | None:
        """Label redaction changed the length Slack was told: ask for an upload URL for the new length.
        Returns (new file id, new upload URL); completeUploadExternal is then rewritten to the new id."""
        upstream = services.upstream
        method = "files.getUploadURLExternal"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if ticket.token:
            headers["Authorization"] = f"Bearer {ticket.token}"
        body = urlencode({"filename": ticket.filename or "file", "length": str(length)}).encode()
        try:
            async with upstream.call(upstream.api_url(method), method_name=method, headers=headers,
                                     body=body) as response:
                answer = json.loads(await response.read())
        except (UpstreamFailure, ValueError):
            return None
        if not (isinstance(answer, dict) and answer.get("ok") and self._trusted_upload_url(services, str(answer.get("upload_url")))
                and isinstance(answer.get("file_id"), str)):
            return None
        return answer["file_id"], answer["upload_url"]

    def _refuse(self, file_id: str | None, outcome: FileOutcome | None) -> tuple[str, str, dict]:
        """(error code, detail, pii) for a refused file, remembered so its completeUploadExternal is refused."""
        if outcome is None:
            code, detail, pii = "pii_scan_failed", messages.scan_failed_detail(), {}
        elif outcome.error:
            code, detail = outcome.error, messages.file_refused_detail(outcome.detail)
            pii = {"entity_types": [], "rule_ids": [], "reason": outcome.error}
        else:
            code = "pii_blocked"
            detail = messages.file_blocked_detail(outcome.entity_types, outcome.rule_ids)
            pii = {"entity_types": outcome.entity_types, "rule_ids": list(outcome.rule_ids)}
        if file_id:
            self.refused[file_id] = Refusal(tuple(pii.get("entity_types", ())), tuple(pii.get("rule_ids", ())),
                                            code, self.clock() + REFUSED_TTL_SECONDS)
        return code, detail, pii

    # --- files.completeUploadExternal and files.upload --------------------------------------------------------

    async def screen(self, services: Services, method: str, call, audit: dict[str, Any]) -> web.Response | None:
        """Before a text-bearing files.* call is scanned: a refusal to answer, or None to go on (the call may
        have been rewritten: redacted file bytes or content, or a renamed file id; `call.rewritten` says so)."""
        if method == "files.completeUploadExternal":
            return self._screen_complete(call)
        if method != "files.upload":
            return None
        started = time.perf_counter()
        items: list[tuple[str, bytes, Callable[[bytes], None]]] = []
        for part in call.files:
            items.append((str(call.args.get("filename") or part.filename), part.data,
                          lambda data, part=part: setattr(part, "data", data)))
        if isinstance(call.args.get("content"), str):
            items.append((str(call.args.get("filename") or "content.txt"), call.args["content"].encode("utf-8"),
                          lambda data: call.args.__setitem__("content", data.decode("utf-8"))))
        for filename, data, put_back in items:
            outcome = await self.scan(services, filename, data, audit.get("channel"), audit, started)
            await self._record(services, {**audit, "file_id": None}, outcome, 200, started)
            if outcome is None or outcome.verdict == "block":
                code, detail, pii = self._refuse(None, outcome)
                return api_refusal(code, detail, **({"pii": pii} if pii else {}))
            if outcome.redacted is not None:
                put_back(outcome.redacted)
                call.rewritten = True
        return None

    def _screen_complete(self, call) -> web.Response | None:
        files = call.args.get("files")
        if not isinstance(files, list):
            return None
        self._forget_expired()
        for item in files:
            file_id = item.get("id") if isinstance(item, dict) else None
            refusal = self.refused.get(file_id) if isinstance(file_id, str) else None
            if refusal is not None:
                detail = (messages.file_blocked_detail(refusal.entity_types, refusal.rule_ids)
                          if refusal.reason == "pii_blocked" else messages.file_refused_earlier(refusal.reason))
                return api_refusal("pii_blocked", detail, pii={"entity_types": list(refusal.entity_types),
                                                                "rule_ids": list(refusal.rule_ids),
                                                                "reason": refusal.reason})
            if isinstance(file_id, str) and file_id in self.renamed:
                item["id"] = self.renamed.pop(file_id)
                call.rewritten = True
        return None

    # --- shared steps ------------------------------------------------------------------------------------------

    async def scan(self, services: Services, filename: str, data: bytes, channel: str | None, audit: dict,
                   started: float) -> FileOutcome | None:
        """Scan off the event loop on the file-scan thread, one batch per job, within the file budget. None when
        the scan failed or ran over it: the caller fails closed."""
        try:
            scan = FileScan(services.scanner_slot.current, filename, data, self.limits, channel_id=channel)
            outcome = await run_file_scan(scan, services.file_scans, self.settings.file_scan_timeout_seconds)
        except asyncio.TimeoutError:
            log.warning(messages.scan_failed_log(audit["method"], "timeout", False), extra={"method": audit["method"]})
            return None
        except Exception as exc:  # noqa: BLE001 - any detection failure fails closed; the type is logged, not text
            log.warning(messages.scan_failed_log(audit["method"], type(exc).__name__, False),
                        extra={"method": audit["method"]})
            return None
        services.metrics.requests.labels(audit["method"], f"file_{outcome.verdict}").inc()
        for entity, count in outcome.entities.items():
            services.metrics.findings.labels(entity).inc(count)
        log.info(messages.file_scanned(audit["method"], outcome.file_type, outcome.size, outcome.verdict,
                                       outcome.entities, outcome.error, _ms(started)),
                 extra={"method": audit["method"], "action": outcome.verdict})
        return outcome

    async def _record(self, services: Services, audit: dict, outcome: FileOutcome | None, status: int,
                      started: float) -> None:
        await self.webapi.record(services, file_event(audit, outcome, status=status, latency_ms=_ms(started),
                                                      config_version=services.scanner_slot.config_version))


FILE_UPLOADS = web.AppKey("file_uploads", FileUploads)  # the upload tickets of this process (tests reach them)


def file_event(audit: dict, outcome: FileOutcome | None, **extra: Any) -> FileScanned:
    """The audit event for a scanned file (None: the scan failed, so it was refused): shapes only."""
    if outcome is None:
        return FileScanned(**audit, action="block", error="pii_scan_failed", **extra)
    return FileScanned(**audit, action=outcome.verdict, file_type=outcome.file_type, size=outcome.size,
                       entities=dict(outcome.entities), rules=list(outcome.rule_ids), error=outcome.error,
                       findings=list(outcome.findings), **extra)


def trusted_file_url(url: str, upstream_base: str) -> bool:
    """Where file bytes may be sent or fetched: Slack's file hosts (https, *.slack.com), or the configured
    upstream's own host (a Slack double, the local sink); never wherever a response says."""
    parts, upstream = urlsplit(url), urlsplit(upstream_base)
    if parts.scheme == "https" and (parts.hostname or "").endswith(".slack.com"):
        return True
    return parts.scheme in ("http", "https") and parts.netloc == upstream.netloc


async def run_file_scan(scan: FileScan, executor, timeout_seconds: float) -> FileOutcome:
    """Step a FileScan on the file-scan executor, one batch per job; raises
    asyncio.TimeoutError past the budget (the caller fails closed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    while await asyncio.wait_for(loop.run_in_executor(executor, scan.step), timeout=max(0.001, deadline - loop.time())):
        pass
    return scan.outcome()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
