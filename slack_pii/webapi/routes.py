"""Slack-Web-API-compatible routes: `POST /api/{method}` and incoming webhooks `POST /services/T…/B…/…`.

Thin on purpose: parse the request the way Slack would, scan text-bearing calls, apply the verdict, render.
Text-bearing calls are read whole (bounded), scanned, and forwarded as the original bytes unless something was
redacted; every other method streams through untouched. Errors are caught here, at the edge, and answered in
Slack's shape, naming field paths and never their content.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from slack_pii import messages
from slack_pii.store.audit import MessageScanned, ScanFailed, explain
from slack_pii.store.base import StoreUnavailable
from slack_pii.errors import PayloadError
from slack_pii.logs import is_method_name
from slack_pii.metrics import Metrics
from slack_pii.services import SERVICES, Services
from slack_pii.keys import fingerprint
from slack_pii.detect.scanner import Outcome
from slack_pii.scanpool import NoOutcome, ScanBusy
from slack_pii.detect.slack_text import json_text
from slack_pii.webapi.upstream import UpstreamFailure, is_read_method
from slack_pii.webapi.codec import (ERROR_STATUS, HOOK_PATH, UPSTREAM_STATUS, ParsedCall, channel_of, api_error,
                                    api_refusal, channel_label, closing_if_unread, encode_call, forward_headers,
                                    parse_call, parse_hook_body, read_body, relay, validate_args)
from slack_pii.webapi.files import FileUploads

log = logging.getLogger("slack_pii.webapi")

# Methods whose arguments Slack shows to people (and stores): scanned before anything is forwarded.
TEXT_METHODS = frozenset({
    "chat.postMessage", "chat.update", "chat.postEphemeral", "chat.scheduleMessage", "chat.meMessage",
    "chat.unfurl", "files.upload", "files.completeUploadExternal", "conversations.setTopic",
    "conversations.setPurpose",
})
# NOTE: Slack's own matching of method-name case is not documented; any case variant of a text-bearing method is
# scanned as that method (and forwarded with the name as sent), so a case trick can never skip the scan.
TEXT_METHOD_BY_FOLDED = {name.lower(): name for name in TEXT_METHODS}
# Every scan worker taken and the queue full: 503 + Retry-After, which slack_sdk's retry handlers understand.
BUSY = "busy"
RETRY_LATER = {"Retry-After": "1"}


class WebApi:
    """The routes; the running parts (scan pool, store, upstream) come from `request.app[SERVICES]`."""

    def __init__(self, settings, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics
        policy_choice = settings.on_scan_error
        self._on_scan_error = policy_choice or None
        self.files = FileUploads(self)

    def add_routes(self, app: web.Application) -> None:
        serve_slack_shaped_errors(app)
        app.router.add_route("POST", "/api/{method}", self.handle_api)
        app.router.add_route("GET", "/api/{method}", self.handle_api)
        app.router.add_post("/services/{path:.+}", self.handle_hook)
        self.files.add_routes(app)

    def on_scan_error(self, services: Services) -> str:
        return self._on_scan_error or services.scanner_slot.current.policy.on_scan_error

    # --- Web API ----------------------------------------------------------------------------------------

    async def handle_api(self, request: web.Request) -> web.StreamResponse:
        sent = request.match_info["method"]
        method = TEXT_METHOD_BY_FOLDED.get(sent.lower())
        if method is None and not is_method_name(sent):
            return api_error(404, "unknown_method", messages.unknown_method())
        if sent.lower() == "files.getuploadurlexternal":
            return await self.files.get_upload_url(request, sent)
        if method is None:
            self.metrics.requests.labels("other", "passthrough").inc()
            return await self.pass_through(request, sent)
        started = time.perf_counter()
        try:
            call = await parse_call(request, self.settings)
            validate_args(method, call.args, self.settings)
        except PayloadError as exc:
            self.metrics.requests.labels(method, "invalid").inc()
            return closing_if_unread(request, api_error(ERROR_STATUS.get(exc.code, 400), exc.code, exc.detail,
                                                        exc.path))
        services = request.app[SERVICES]
        channel = channel_label(channel_of(call.args), services.keys.fingerprints)
        caller = fingerprint(call.token, services.keys.fingerprints) if call.token else None
        audit = dict(source="webapi", method=method, channel=channel, caller=caller)
        if (refusal := await self.files.screen(services, method, call, audit)) is not None:
            return refusal

        outcome, failure = await self._scan(services, call.args, channel)
        if failure == BUSY:  # NOTE: refused even with on_scan_error=forward: a flood must not buy unscanned posts
            self.metrics.requests.labels(method, BUSY).inc()
            return api_error(503, "pii_scan_busy", messages.scan_busy_detail(), headers=RETRY_LATER)
        if failure is not None:
            forward = self.on_scan_error(services) == "forward"
            log.warning(messages.scan_failed_log(method, failure, forward), extra={"method": method})
            self.metrics.requests.labels(method, "scan_failed").inc()
            if not forward:
                response = api_refusal("pii_scan_failed", messages.scan_failed_detail())
                await self.record(services, ScanFailed(**audit, action="block", reason=failure, status=200,
                                                       latency_ms=_ms(started),
                                                       config_version=services.scanner_slot.config_version))
                return response
            response = await self._forward_call(request, sent, call, call.args if call.rewritten else None)
            await self.record(services, ScanFailed(**audit, action="forward", reason=failure, status=response.status,
                                                   latency_ms=_ms(started),
                                                   config_version=services.scanner_slot.config_version))
            return response

        verdict = outcome.verdict
        self._count(method, outcome)
        if verdict == "block":
            response = api_refusal("pii_blocked",
                                   messages.blocked_detail(outcome.decision.entity_types, outcome.decision.rule_ids),
                                   pii={"entity_types": outcome.decision.entity_types,
                                        "rule_ids": outcome.decision.rule_ids})
        else:
            redacted = outcome.redacted if verdict == "redact" and outcome.redacted != call.args else None
            redacted = call.args if redacted is None and call.rewritten else redacted
            response = await self._forward_call(request, sent, call, redacted, verdict)
        summary = outcome.summary()
        await self.record(services, MessageScanned(**audit, action=verdict, entities=summary["entities"],
                                                   rules=summary["rules"], latency_ms=_ms(started),
                                                   status=response.status,
                                                   config_version=outcome.config_version, **explain(outcome)))
        log.info(messages.request_done("webapi", method, verdict, response.status, _ms(started)),
                 extra={"method": method, "channel": channel, "action": verdict})
        return response

    async def _forward_call(self, request: web.Request, method: str, call: ParsedCall, redacted: dict | None,
                            verdict: str = "forward") -> web.StreamResponse:
        body, query, content_type = (call.raw, request.query_string, request.headers.get("Content-Type", "")) \
            if redacted is None else await encode_call(call, redacted)
        headers = forward_headers(request)
        if content_type:
            headers["Content-Type"] = content_type
        upstream = request.app[SERVICES].upstream
        try:
            async with upstream.call(upstream.api_url(method), method_name=method, headers=headers,
                                          body=body or None, query=query,
                                          http_method=request.method) as upstream_response:
                return await relay(request, upstream_response, {"X-Slack-PII-Action": verdict})
        except UpstreamFailure as exc:
            status, code = UPSTREAM_STATUS[exc.kind]
            return api_error(status, code, str(exc))

    async def pass_through(self, request: web.Request, method: str) -> web.StreamResponse:
        """Not text-bearing: the body streams through untouched (read first when small, so a refused
        connection can be retried)."""
        length = request.content_length
        body: Any = request.content if request.body_exists else None
        if body is not None and length is not None and length <= self.settings.max_body_bytes:
            body = await request.read()
        upstream = request.app[SERVICES].upstream
        try:
            async with upstream.call(upstream.api_url(method), method_name=method,
                                          headers=forward_headers(request), body=body,
                                          query=request.query_string,
                                          http_method=request.method) as upstream_response:
                return await relay(request, upstream_response)
        except UpstreamFailure as exc:
            status, code = UPSTREAM_STATUS[exc.kind]
            return api_error(status, code, str(exc))

    # --- incoming webhooks ------------------------------------------------------------------------------

    async def handle_hook(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if not HOOK_PATH.fullmatch(path):
            return web.Response(status=404, text="no_service")
        started = time.perf_counter()
        try:
            raw = await read_body(request, self.settings.max_body_bytes)
            payload, form_encoded = parse_hook_body(raw, request.content_type)
            validate_args("webhook", payload, self.settings)
        except PayloadError as exc:
            self.metrics.requests.labels("webhook", "invalid").inc()
            return closing_if_unread(request, web.Response(status=ERROR_STATUS.get(exc.code, 400),
                                                           text=hook_error_text(exc)))
        services = request.app[SERVICES]
        channel = channel_label(payload.get("channel") if isinstance(payload.get("channel"), str) else None,
                                services.keys.fingerprints)
        audit = dict(source="webhook", method="webhook", channel=channel,
                     caller=fingerprint(path, services.keys.fingerprints))
        outcome, failure = await self._scan(services, payload, channel)
        if failure == BUSY:
            self.metrics.requests.labels("webhook", BUSY).inc()
            return web.Response(status=503, text=f"pii_scan_busy: {messages.scan_busy_detail()}",
                                headers=RETRY_LATER)
        if failure is not None:
            forward = self.on_scan_error(services) == "forward"
            log.warning(messages.scan_failed_log("webhook", failure, forward), extra={"method": "webhook"})
            self.metrics.requests.labels("webhook", "scan_failed").inc()
            if forward:
                response = await self._forward_hook(request, raw)
            else:
                response = web.Response(status=503, text=f"pii_scan_failed: {messages.scan_failed_detail()}")
            await self.record(services, ScanFailed(**audit, action="forward" if forward else "block", reason=failure,
                                                   status=response.status, latency_ms=_ms(started),
                                                   config_version=services.scanner_slot.config_version))
            return response
        verdict = outcome.verdict
        self._count("webhook", outcome)
        if verdict == "block":
            detail = messages.blocked_detail(outcome.decision.entity_types, outcome.decision.rule_ids)
            response = web.Response(status=400, text=f"pii_blocked: {detail}")
        else:
            body = raw
            if verdict == "redact" and outcome.redacted != payload:
                text = json_text(outcome.redacted)
                body = urlencode({"payload": text}).encode() if form_encoded else text.encode("utf-8")
            response = await self._forward_hook(request, body)
        summary = outcome.summary()
        await self.record(services, MessageScanned(**audit, action=verdict, entities=summary["entities"],
                                                   rules=summary["rules"], latency_ms=_ms(started),
                                                   status=response.status,
                                                   config_version=outcome.config_version, **explain(outcome)))
        log.info(messages.request_done("webhook", "webhook", verdict, response.status, _ms(started)),
                 extra={"method": "webhook", "action": verdict})
        return response

    async def _forward_hook(self, request: web.Request, body: bytes) -> web.StreamResponse:
        upstream = request.app[SERVICES].upstream
        try:
            async with upstream.call(upstream.hook_url(request.path), method_name="webhook",
                                          headers=forward_headers(request), body=body) as upstream_response:
                return await relay(request, upstream_response)
        except UpstreamFailure as exc:
            status, code = UPSTREAM_STATUS[exc.kind]
            return web.Response(status=status, text=f"{code}: {exc}")

    # --- shared steps ---------------------------------------------------------------------------------------

    async def _scan(self, services: Services, payload: Any, channel: str | None) -> tuple[Outcome | None, str | None]:
        """(outcome, None), or (None, reason) when detection raised or ran over its budget."""
        kwargs = {"channel_name": channel[1:]} if channel and channel.startswith("#") else {"channel_id": channel}
        started = time.perf_counter()
        try:
            outcome = await services.scan_pool.scan(payload, **kwargs)
        except ScanBusy:
            return None, BUSY
        except NoOutcome as exc:
            return None, exc.reason
        except Exception as exc:  # noqa: BLE001 - any detection failure fails closed; the type is logged, not text
            return None, type(exc).__name__
        finally:
            self.metrics.scan_seconds.observe(time.perf_counter() - started)
        return outcome, None

    def _count(self, method: str, outcome) -> None:
        self.metrics.requests.labels(method, outcome.verdict).inc()
        for item in outcome.decision.actions:
            if item.action != "allow":
                self.metrics.findings.labels(item.finding.entity_type).inc()

    async def record(self, services: Services, event) -> None:
        """NOTE: recorded after the caller's answer was decided (the message may already be in Slack), so a
        store outage here is logged, not turned into an error the caller would retry into a duplicate post."""
        try:
            await services.store.record(event)
        except StoreUnavailable as exc:
            log.warning(messages.audit_lost(event.method, type(exc).__name__))


class SlackShapedRequestHandler(RequestHandler):
    """aiohttp's connection handler, with its own error pages (malformed requests, unhandled errors) answered in
    Slack's shape, echoing nothing: aiohttp's default page quotes the offending request line or header."""

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # NOTE: the type only: exception text (a parser error, a decode error) quotes the input.
        log.warning(messages.http_error_log(status, type(exc).__name__ if exc else "none"))
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")  # as aiohttp does: the connection is cut
        if status >= 500:
            code, detail = ("internal_error", messages.internal_error()) if status != 504 else \
                ("request_timeout", messages.internal_error())
        else:
            code, detail = "invalid_request", messages.malformed_request()
        response = web.Response(status=status, content_type="application/json",
                                text=json.dumps({"ok": False, "error": code, "detail": detail}))
        response.force_close()
        return response


class SlackShapedServer(web.Server):
    def __call__(self) -> RequestHandler:
        return SlackShapedRequestHandler(self, loop=self._loop, **self._kwargs)


def serve_slack_shaped_errors(app: web.Application) -> None:
    """Make the server that runs `app` use SlackShapedRequestHandler.

    NOTE: aiohttp has no public hook for these pages (aio-libs/aiohttp#3287, #9882: middlewares never see a request
    the parser refused), so the app's server factory is wrapped; the server it builds is aiohttp's own, re-classed.
    """
    make_handler = app._make_handler

    def _make_handler(**kwargs: Any) -> web.Server:
        server = make_handler(**kwargs)
        server.__class__ = SlackShapedServer
        return server

    app._make_handler = _make_handler  # type: ignore[method-assign]


def hook_error_text(exc: PayloadError) -> str:
    return f"{exc.code}: {exc.detail}"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


__all__ = ["WebApi", "TEXT_METHODS", "is_read_method"]
