"""The only outbound HTTP client: one aiohttp ClientSession, to the configured upstream and nowhere else.

URLs are built from the configured bases and a validated method name or webhook path, redirects are never
followed, and the request's Host header is never forwarded, so no request can steer the proxy elsewhere.

Retries only where a retry cannot post twice: a connection that was refused (the request never left) is retried
for any method (aiohttp's own resend of "idempotent" methods on a reset connection is switched off); a 429 is retried only for read methods, and only when Retry-After is short. Everything else
(timeouts, broken connections, 5xx, 429 on writes) goes back to the caller as it happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from slack_pii import messages
from slack_pii.errors import UpstreamError
from slack_pii.metrics import Metrics

log = logging.getLogger("slack_pii.upstream")

# A read retried after a 429 waits at most this long; longer waits go back to the caller with Retry-After.
MAX_RETRY_AFTER_SECONDS = 2.0
READ_VERBS = ("list", "info", "history", "replies", "test", "get", "lookup", "members")


def is_read_method(method: str) -> bool:
    """Web API methods that change nothing, so Slack's semantics make a repeat harmless."""
    verb = method.rsplit(".", 1)[-1]
    return verb.startswith(READ_VERBS)


class UpstreamFailure(UpstreamError):
    """The upstream gave no answer. `kind`: timeout, connection (never sent) or disconnected (may have landed)."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


def retry_after_seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class Upstream:
    """Sends forwarded requests to `api_base` (Web API) or `hooks_base` (incoming webhooks)."""

    def __init__(self, api_base: str, hooks_base: str, *, timeout_seconds: float, retries: int,
                 metrics: Metrics | None = None, backoff_seconds: float = 0.1):
        self.api_base = api_base if api_base.endswith("/") else api_base + "/"
        self.hooks_base = hooks_base.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.metrics = metrics or Metrics()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # NOTE: auto_decompress=False: response bodies go back byte-for-byte, Content-Encoding and all.
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_seconds), auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"))
        # NOTE: aiohttp silently resends GET/PUT/DELETE once when a pooled connection is reset or closed; a Slack
        # post sent as GET (arguments in the query string) would be delivered twice. The only switch is private;
        # our own retry policy above is the only one in force.
        self._session._retry_connection = False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def api_url(self, method: str) -> str:
        return self.api_base + method  # method is validated by the caller: dotted letters, digits, underscores

    def hook_url(self, path: str) -> str:
        return self.hooks_base + path  # path is validated by the caller: /services/T…/B…/…

    @asynccontextmanager
    async def call(self, url: str, *, method_name: str, headers: Mapping[str, str], body: Any,
                   query: str = "", http_method: str = "POST") -> AsyncIterator[aiohttp.ClientResponse]:
        """Send once (or retried where safe) and yield the response; raise UpstreamFailure when none came."""
        response = await self._send(http_method, url, method_name, headers, body, query)
        try:
            yield response
        finally:
            response.release()

    async def _send(self, http_method: str, url: str, method_name: str, headers: Mapping[str, str], body: Any,
                    query: str) -> aiohttp.ClientResponse:
        assert self._session is not None, "Upstream.start() was not awaited"
        # Only a body we hold in memory can be sent again; a streamed one goes once.
        can_resend = body is None or isinstance(body, (bytes, bytearray))
        full_url = url + ("?" + query if query else "")
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._session.request(http_method, full_url, data=body, headers=dict(headers),
                                                        allow_redirects=False)
            except aiohttp.ClientConnectorError:
                # Connect phase: nothing was sent, so a retry cannot post twice.
                self._count("connection", method_name, attempt)
                if can_resend and attempt <= self.retries:
                    await self._pause(method_name, "connection", self.backoff_seconds * 2 ** (attempt - 1))
                    continue
                raise UpstreamFailure("connection", messages.upstream_unreachable()) from None
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
                self._count("timeout", method_name, attempt)
                raise UpstreamFailure("timeout", messages.upstream_timeout(self.timeout_seconds)) from None
            except aiohttp.ClientError:
                self._count("disconnected", method_name, attempt)
                raise UpstreamFailure("disconnected", messages.upstream_broken()) from None
            if response.status == 429:
                self.metrics.upstream_errors.labels("status_429").inc()
                delay = retry_after_seconds(response.headers.get("Retry-After"))
                if (is_read_method(method_name) and can_resend and attempt <= self.retries and delay is not None
                        and delay <= MAX_RETRY_AFTER_SECONDS):
                    response.release()
                    await self._pause(method_name, "status 429", delay)
                    continue
            elif response.status >= 500:
                self.metrics.upstream_errors.labels("status_5xx").inc()
            return response

    def _count(self, kind: str, method_name: str, attempt: int) -> None:
        self.metrics.upstream_errors.labels(kind).inc()
        log.warning(messages.upstream_failed_log(method_name, kind, attempt),
                    extra={"method": method_name, "kind": kind, "attempt": attempt})

    async def _pause(self, method_name: str, kind: str, delay: float) -> None:
        log.info(messages.upstream_retry(method_name, kind, delay))
        await asyncio.sleep(delay)
