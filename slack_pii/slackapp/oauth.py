"""OAuth for users' own tokens: `/slack/install` sends a person to Slack to authorise the app (user scope
`chat:write`), `/slack/oauth_redirect` trades the code for their token and keeps it, encrypted, in the store.

With that token *Redact my message* edits the sender's message as them (Slack lets only the author edit it).
Mounted only when SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set. The `state` is signed with a key derived
from SLACK_PII_SECRET_KEY, expires after STATE_TTL_SECONDS, is bound to the browser by a cookie and can be
used once. Neither the code nor the token is ever logged, audited or shown.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlencode

from aiohttp import web
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from slack_pii import messages
from slack_pii.services import Services
from slack_pii.store.audit import AuditEvent
from slack_pii.keys import fingerprint

log = logging.getLogger("slack_pii.oauth")

AUTHORIZE_URL = "https://slack.com/oauth/v2/authorize"  # the browser goes to real Slack, whatever the upstream
USER_SCOPES = "chat:write"
INSTALL_PATH, REDIRECT_PATH = "/slack/install", "/slack/oauth_redirect"
STATE_TTL_SECONDS = 600
STATE_COOKIE = "slack_pii_oauth_state"


@dataclass(frozen=True)
class UserAuthorised(AuditEvent):
    """A person completed /slack/install: their user token is now held (encrypted) for Redact my message."""

    name: ClassVar[str] = "user_authorised"
    source: str
    method: str
    caller: str | None  # keyed fingerprint of the Slack user id
    scopes: str = ""


def oauth_enabled(settings) -> bool:
    return bool(settings.slack_client_id and settings.slack_client_secret)


def install_url(settings) -> str | None:
    """The link a warning can offer, when OAuth is set up and the proxy knows its public address."""
    if oauth_enabled(settings) and settings.public_url:
        return settings.public_url.rstrip("/") + INSTALL_PATH
    return None


class OAuthFlow:
    """The two routes, built at start-up from the running `Services`; `clock` is injectable so tests can expire a
    state."""

    def __init__(self, services: Services, *, clock: Callable[[], float] = time.time,
                 logger: logging.Logger | None = None):
        self.settings = services.settings
        self.clock = clock
        self.logger = logger
        self.store = services.store
        self.api_base = services.upstream.api_base
        self._audit_key = services.keys.fingerprints
        self._key = services.keys.oauth_state

    @property
    def redirect_uri(self) -> str | None:
        """Sent only with a public URL; otherwise Slack uses the app's one configured redirect URL."""
        return self.settings.public_url.rstrip("/") + REDIRECT_PATH if self.settings.public_url else None

    def new_state(self) -> tuple[str, str]:
        """(state, nonce): `issued.nonce.signature`; the nonce also goes in the browser's cookie."""
        nonce = secrets.token_urlsafe(16)
        body = f"{int(self.clock())}.{nonce}"
        return f"{body}.{self._sign(body)}", nonce

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def check_state(self, state: str, cookie: str | None) -> str | None:
        """The state's nonce when it is ours, unexpired and from this browser; otherwise None."""
        issued, _, rest = state.partition(".")
        nonce, _, signature = rest.rpartition(".")
        if not (issued.isdigit() and nonce and hmac.compare_digest(self._sign(f"{issued}.{nonce}"), signature)):
            return None
        if not 0 <= self.clock() - int(issued) <= STATE_TTL_SECONDS:
            return None
        if not (cookie and hmac.compare_digest(cookie, nonce)):
            return None
        return nonce

    async def install(self, request: web.Request) -> web.StreamResponse:
        """GET /slack/install: off to Slack's consent screen with a fresh state."""
        state, nonce = self.new_state()
        query = {"client_id": self.settings.slack_client_id, "scope": "", "user_scope": USER_SCOPES,
                 "state": state}
        if self.redirect_uri:
            query["redirect_uri"] = self.redirect_uri
        response = web.Response(status=302, headers={"Location": f"{AUTHORIZE_URL}?{urlencode(query)}"})
        response.set_cookie(STATE_COOKIE, nonce, max_age=STATE_TTL_SECONDS, path="/slack/", httponly=True,
                            samesite="Lax", secure=(self.settings.public_url or "").startswith("https://"))
        response.headers["Cache-Control"] = "no-store"  # a state is for one browser, once
        return response

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        """GET /slack/oauth_redirect: check the state, trade the code for the user's token, keep it encrypted."""
        nonce = self.check_state(request.query.get("state", ""), request.cookies.get(STATE_COOKIE))
        if nonce is None:
            log.warning(messages.oauth_refused(REDIRECT_PATH, "invalid or expired state"))
            return _page(400, "This link has expired or was not started here. "
                         f'<a href="{INSTALL_PATH}">Start again</a>.')
        if not await self.store.mark_processed("oauth-state:" + nonce):
            log.warning(messages.oauth_refused(REDIRECT_PATH, "state already used"))
            return _page(400, f'This link was already used. <a href="{INSTALL_PATH}">Start again</a>.')
        if request.query.get("error") or not request.query.get("code"):
            error = request.query.get("error", "no_code")[:40]
            log.info(messages.oauth_refused(REDIRECT_PATH, f"Slack answered {error!r}"))
            return _page(400, f"The app was not authorised ({html.escape(error)}). Nothing was saved.")
        client = AsyncWebClient(base_url=self.api_base, logger=self.logger)
        try:
            answer = await client.oauth_v2_access(
                client_id=self.settings.slack_client_id,
                client_secret=self.settings.slack_client_secret.get_secret_value(),
                code=request.query["code"], **({"redirect_uri": self.redirect_uri} if self.redirect_uri else {}))
        except SlackClientError as exc:
            error = str(exc.response.get("error", "unknown")) if isinstance(exc, SlackApiError) else \
                type(exc).__name__
            log.warning(messages.oauth_exchange_failed(error))
            return _page(502, f"Slack refused the authorisation ({html.escape(error)}). Nothing was saved.")
        user = answer.get("authed_user") or {}
        if not (user.get("id") and user.get("access_token")):
            log.warning(messages.oauth_exchange_failed("no authed_user token"))
            return _page(502, "Slack did not grant a user token. Nothing was saved.")
        await self.store.save_user_token(user["id"], user["access_token"])
        scopes = str(user.get("scope", ""))
        await self.store.record(UserAuthorised(source="oauth", method="oauth.v2.access",
                                               caller=fingerprint(user["id"], self._audit_key),
                                               scopes=scopes))
        log.info(messages.oauth_authorised(scopes))
        response = _page(200, "You can now use <b>Redact my message</b>: when the app warns you about a message, "
                         "it can replace it with the redacted version for you. You can close this tab.")
        response.del_cookie(STATE_COOKIE, path="/slack/")
        return response


def _page(status: int, body_html: str) -> web.Response:
    """A small self-contained HTML answer for the browser (no scripts, nothing external)."""
    title = "Authorised" if status == 200 else "Not authorised"
    text = (f"<!doctype html><html><head><meta charset=utf-8><title>Send safely: {title}</title></head>"
            f"<body style=\"font-family:sans-serif;max-width:36em;margin:3em auto\"><h1>{title}</h1>"
            f"<p>{body_html}</p></body></html>")
    return web.Response(status=status, text=text, content_type="text/html",
                        headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'"})


OAUTH = web.AppKey("oauth", OAuthFlow)


async def install(request: web.Request) -> web.StreamResponse:
    return await request.app[OAUTH].install(request)


async def redirect(request: web.Request) -> web.StreamResponse:
    return await request.app[OAUTH].redirect(request)


def mount_oauth(app: web.Application, settings) -> None:
    """Add the two routes when SLACK_CLIENT_ID/SECRET are set; the flow itself is built at start-up."""
    if oauth_enabled(settings):
        app.router.add_get(INSTALL_PATH, install)
        app.router.add_get(REDIRECT_PATH, redirect)
