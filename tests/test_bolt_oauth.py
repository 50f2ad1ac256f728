"""OAuth for users' own tokens, end to end: /slack/install → Slack (the double answers oauth.v2.access) →
/slack/oauth_redirect keeps the token encrypted → "Redact my message" edits the message with it."""

from __future__ import annotations

import base64
import json
import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from slack_pii.slackapp import blocks
from slack_pii.logs import AccessLogger
from slack_pii.slackapp.oauth import OAUTH, STATE_COOKIE, STATE_TTL_SECONDS
from tests.bolt_support import (CHANNEL, USER, assert_renders, block_action, buttons, message_event, start_harness,
                                stop_harness)
from tests.factories import CARD

CLIENT_ID, CLIENT_SECRET = "1234567890.0987654321", "c1ient5ecret0f7heapp000000000000"
PUBLIC = "https://pii-proxy.example.com"
USER_TOKEN = "xoxp-17653672481-2222-3333-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
CODE = "1234.5678.oauth-code-from-slack"


@pytest.fixture
async def h(tmp_path, scanner):
    harness = await start_harness(tmp_path, scanner, slack_client_id=CLIENT_ID, slack_client_secret=CLIENT_SECRET,
                                  public_url=PUBLIC)
    yield harness
    await stop_harness(harness)


def _grant(h) -> None:
    h.double.answer("oauth.v2.access", json_body={
        "ok": True, "app_id": "A0APP", "team": {"id": "T0TEAM001"}, "scope": "", "token_type": "bot",
        "authed_user": {"id": USER, "scope": "chat:write", "access_token": USER_TOKEN, "token_type": "user"}})


async def _install(h) -> tuple[str, str, dict]:
    """GET /slack/install: (state, browser cookie, authorize query)."""
    response = await h.session.get(h.server.make_url("/slack/install"), allow_redirects=False)
    assert response.status == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://slack.com/oauth/v2/authorize"
    query = {k: v[0] for k, v in parse_qs(location.query, keep_blank_values=True).items()}
    return query["state"], response.cookies[STATE_COOKIE].value, query


async def _redirect(h, state: str, cookie: str | None, code: str = CODE):
    headers = {"Cookie": f"{STATE_COOKIE}={cookie}"} if cookie else {}
    response = await h.session.get(h.server.make_url("/slack/oauth_redirect"), params={"state": state, "code": code},
                                   headers=headers, allow_redirects=False)
    return response.status, await response.text()


async def _warned(h, text: str) -> dict:
    await h.event(message_event(text, ts="1700000400.000001"))
    return h.calls("chat.postEphemeral")[-1]


async def test_install_redirects_to_slack_with_a_state_and_the_user_scope(h):
    state, cookie, query = await _install(h)
    assert query["client_id"] == CLIENT_ID and query["user_scope"] == "chat:write"
    assert query["redirect_uri"] == f"{PUBLIC}/slack/oauth_redirect"
    assert state and cookie and cookie in state  # the browser's cookie binds the state to it
    assert CLIENT_SECRET not in json.dumps(query)


async def test_authorising_stores_the_token_and_redact_my_message_then_edits_as_the_sender(h):
    warning = await _warned(h, f"my card {CARD} thanks")
    assert f"<{PUBLIC}/slack/install|" in json.dumps(warning)  # the warning links to the install page
    assert_renders(warning)

    _grant(h)
    state, cookie, _ = await _install(h)
    status, page = await _redirect(h, state, cookie)
    assert status == 200 and "You can now use <b>Redact my message</b>" in page
    exchange = h.double.received("oauth.v2.access")
    assert len(exchange) == 1 and exchange[0].args()["code"] == CODE
    assert exchange[0].args()["redirect_uri"] == f"{PUBLIC}/slack/oauth_redirect"
    basic = base64.b64decode(exchange[0].headers["Authorization"].removeprefix("Basic ")).decode()
    assert basic == f"{CLIENT_ID}:{CLIENT_SECRET}"
    assert await h.store.user_token(USER) == USER_TOKEN
    assert [e["name"] for e in await h.store.audit_events()].count("user_authorised") == 1

    held = buttons(h.calls("chat.postEphemeral")[-1])[blocks.REDACT_MINE]
    await h.interact(block_action(blocks.REDACT_MINE, held, response_url=h.response_url))
    update = h.calls("chat.update")
    assert len(update) == 1 and h.tokens("chat.update") == [f"Bearer {USER_TOKEN}"]
    assert update[0]["channel"] == CHANNEL and update[0]["ts"] == "1700000400.000001"
    assert CARD not in update[0]["text"] and update[0]["text"].startswith("my card ")
    # the next warning no longer asks them to authorise
    assert "/slack/install" not in json.dumps(await _warned(h, f"again {CARD}"))


@pytest.mark.parametrize("case", ["tampered", "expired", "no_cookie", "other_cookie", "reused"])
async def test_a_wrong_expired_or_reused_state_is_refused_and_stores_nothing(h, case):
    _grant(h)
    state, cookie, _ = await _install(h)
    if case == "tampered":
        state = state[:-1] + ("0" if state[-1] != "0" else "1")
    elif case == "expired":
        h.server.app[OAUTH].clock = lambda: time.time() + STATE_TTL_SECONDS + 1
    elif case == "no_cookie":
        cookie = None
    elif case == "other_cookie":
        cookie = (await _install(h))[1]
    elif case == "reused":
        assert (await _redirect(h, state, cookie))[0] == 200
        await h.store._write("DELETE FROM user_tokens")
        _grant(h)
    status, page = await _redirect(h, state, cookie)
    assert status == 400 and "Start again" in page
    assert len(h.double.received("oauth.v2.access")) == (1 if case == "reused" else 0)
    assert await h.store.user_token(USER) is None


async def test_slack_refusing_the_code_saves_nothing_and_says_why(h):
    h.double.answer("oauth.v2.access", json_body={"ok": False, "error": "invalid_code"})
    state, cookie, _ = await _install(h)
    status, page = await _redirect(h, state, cookie)
    assert status == 502 and "invalid_code" in page and CODE not in page
    assert await h.store.user_token(USER) is None


async def test_the_code_and_token_never_reach_logs_audit_or_the_database_file(tmp_path, scanner, caplog):
    caplog.set_level("DEBUG")
    # serve's own access logger (aiohttp's default one would print the query string, code included)
    h = await start_harness(tmp_path, scanner, slack_client_id=CLIENT_ID, slack_client_secret=CLIENT_SECRET,
                            public_url=PUBLIC, runner={"access_log_class": AccessLogger,
                                                       "access_log": logging.getLogger("slack_pii.access")})
    try:
        _grant(h)
        state, cookie, _ = await _install(h)
        assert (await _redirect(h, state, cookie))[0] == 200
        assert "GET /slack/oauth_redirect 200" in caplog.text
        audit = json.dumps(await h.store.audit_events())
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("slack-pii.sqlite3*"))
        for value in (USER_TOKEN, CODE, CLIENT_SECRET, state):
            assert value not in caplog.text and value not in audit
            assert value.encode() not in raw
        assert await h.store.user_token(USER) == USER_TOKEN  # it is there, encrypted
    finally:
        await stop_harness(h)


async def test_without_a_public_url_the_warning_says_where_the_link_lives(tmp_path, scanner):
    h = await start_harness(tmp_path, scanner, slack_client_id=CLIENT_ID, slack_client_secret=CLIENT_SECRET)
    try:
        assert "ask whoever runs it for the /slack/install link" in json.dumps(await _warned(h, f"card {CARD}"))
        _, _, query = await _install(h)
        assert "redirect_uri" not in query  # Slack then uses the app's one configured redirect URL
    finally:
        await stop_harness(h)


async def test_without_client_credentials_there_is_no_oauth_and_the_warning_says_so(tmp_path, scanner):
    h = await start_harness(tmp_path, scanner)
    try:
        for path in ("/slack/install", "/slack/oauth_redirect"):
            assert (await h.session.get(h.server.make_url(path), allow_redirects=False)).status == 404
        assert "not set up for people to authorise it" in json.dumps(await _warned(h, f"card {CARD}"))
    finally:
        await stop_harness(h)
