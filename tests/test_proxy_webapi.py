"""The Web API and webhook routes, driven by the real slack_sdk clients; asserts are on what the Slack double got."""

from __future__ import annotations

import asyncio
import json
import warnings

import aiohttp
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook import WebhookClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from slack_pii.services import SERVICES
from tests.factories import AWS_KEY, CARD, EMAIL, IBAN, SLACK_BOT, SSN, section
from tests.slack_double import double, proxy, proxy_settings  # noqa: F401 - fixtures

HOOK = "/services/T0ABCDEF12/B0ABCDEF34/abcdefghijklmnopqrstuvwx"
SECRETS = (CARD, SSN, IBAN, AWS_KEY, SLACK_BOT)


def api_url(proxy) -> str:
    return str(proxy.make_url("/api/"))


def assert_clean(value) -> None:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in text


async def post(proxy, path, data: bytes, content_type="application/json", headers=None):
    async with aiohttp.ClientSession() as session:
        async with session.post(proxy.make_url(path), data=data,
                                headers={"Content-Type": content_type, **(headers or {})}) as response:
            return response.status, dict(response.headers), await response.read()


# --- redact, block, warn ------------------------------------------------------------------------------------


async def test_async_client_message_is_redacted_in_text_blocks_and_attachments(proxy, double):
    client = AsyncWebClient(token="xoxb-caller", base_url=api_url(proxy))
    response = await client.chat_postMessage(
        channel="C0123", text=f"card {CARD}",
        blocks=[section(f"ssn {SSN}"), {"type": "context", "elements": [{"type": "mrkdwn", "text": f"iban {IBAN}"}]}],
        attachments=[{"fallback": f"card {CARD}", "text": f"ssn {SSN}", "fields": [{"title": "x", "value": IBAN}]}])
    [got] = double.received("chat.postMessage")
    args = got.args()
    assert_clean(args)
    assert args["text"].startswith("card ") and args["text"].endswith("1111")
    assert args["blocks"][0]["text"]["text"] == "ssn [US_SSN]"
    assert args["attachments"][0]["fields"][0]["title"] == "x"
    assert got.headers["Authorization"] == "Bearer xoxb-caller"
    assert response["ts"] == "1700000000.000001"  # Slack's answer, unchanged
    assert response.headers["X-Slack-PII-Action"] == "redact"


async def test_sync_client_form_body_with_json_string_blocks_is_redacted(proxy, double):
    client = WebClient(token="xoxb-sync", base_url=api_url(proxy))
    blocks = json.dumps([section(f"card {CARD}")])
    response = await asyncio.to_thread(client.api_call, "chat.postMessage",
                                       data={"channel": "C1", "text": f"ssn {SSN}", "blocks": blocks})
    assert response["ok"]
    [got] = double.received("chat.postMessage")
    assert got.content_type == "application/x-www-form-urlencoded"
    assert_clean(got.body.decode())
    args = got.args()
    assert args["text"] == "ssn [US_SSN]" and args["blocks"][0]["text"]["text"].endswith("1111")


async def test_blocked_message_never_reaches_slack_and_explains_without_values(proxy, double):
    client = AsyncWebClient(token="xoxb-caller", base_url=api_url(proxy))
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C1", text=f"deploy with {AWS_KEY}")
    body = raised.value.response.data
    assert body["ok"] is False and body["error"] == "pii_blocked"
    assert "AWS_ACCESS_KEY" in " ".join(body["pii"]["entity_types"]) and body["pii"]["rule_ids"]
    assert body["pii"]["rule_ids"][0] in body["detail"]
    assert AWS_KEY not in json.dumps(body)
    assert double.requests == []


async def test_sync_client_block_raises_slack_api_error(proxy, double):
    client = WebClient(token="xoxb-sync", base_url=api_url(proxy))
    with pytest.raises(SlackApiError) as raised:
        await asyncio.to_thread(client.chat_postMessage, channel="C1", text=f"token {SLACK_BOT}")
    assert raised.value.response["error"] == "pii_blocked"
    assert double.requests == []


async def test_warn_and_clean_messages_are_forwarded_byte_for_byte(proxy, double, proxy_settings):
    raw = json.dumps({"channel": "C1", "text": f"mail me at {EMAIL}",  "x":  1}, indent=3).encode()
    status, headers, _ = await post(proxy, "/api/chat.postMessage", raw, headers={"Authorization": "Bearer xoxb-w"})
    assert status == 200 and headers["X-Slack-PII-Action"] == "warn"
    clean = b'{"channel":"C1",   "text":"all good \\u00e9"}'
    await post(proxy, "/api/chat.postMessage", clean, "application/json; charset=utf-8")
    assert [r.body for r in double.received("chat.postMessage")] == [raw, clean]
    rows = await proxy.app[SERVICES].store.audit_events()
    assert [r["action"] for r in rows] == ["warn", "allow"]
    assert rows[0]["entities"] == {"EMAIL_ADDRESS": 1} and rows[0]["caller"] and "xoxb" not in rows[0]["caller"]


async def test_topic_in_the_query_string_is_redacted_in_place(proxy, double):
    client = AsyncWebClient(token="xoxb-q", base_url=api_url(proxy))
    await client.conversations_setTopic(channel="C1", topic=f"on call: ssn {SSN}")
    [got] = double.received("conversations.setTopic")
    assert got.query == {"channel": "C1", "topic": "on call: ssn [US_SSN]"}


async def test_unfurls_and_upload_comments_are_scanned(proxy, double):
    client = AsyncWebClient(token="xoxb-u", base_url=api_url(proxy))
    await client.chat_unfurl(channel="C1", ts="1.2", unfurls={"https://x.test": {"text": f"card {CARD}"}})
    await client.api_call("files.completeUploadExternal", data={
        "files": json.dumps([{"id": "F1", "title": f"ssn {SSN}"}]), "channel_id": "C1",
        "initial_comment": f"iban {IBAN}"})
    unfurl, complete = double.received("chat.unfurl")[0].args(), double.received("files.completeUploadExternal")[0]
    assert_clean(unfurl) and assert_clean(complete.body.decode())
    assert complete.args()["files"] == [{"id": "F1", "title": "ssn [US_SSN]"}]


async def test_multipart_upload_comment_is_redacted_and_the_file_is_untouched(proxy, double):
    content = bytes(range(256)) * 40 + f"\r\n--not-a-boundary {CARD}".encode()  # binary; even holding a card
    client = WebClient(token="xoxb-f", base_url=api_url(proxy))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        response = await asyncio.to_thread(client.files_upload, file=content, filename="dump.bin", channels="C1",
                                           initial_comment=f"card {CARD}", title=f"ssn {SSN}")
    assert response["ok"]
    [got] = double.received("files.upload")
    parts = got.parts()
    assert parts["initial_comment"].endswith("1111") and CARD not in parts["initial_comment"]
    assert parts["title"] == "ssn [US_SSN]"
    assert parts["file"] == content


async def test_multipart_without_findings_is_forwarded_unchanged(proxy, double):
    form = aiohttp.FormData()
    form.add_field("channels", "C1")
    form.add_field("initial_comment", "nightly report")
    form.add_field("file", b"\x00\x01 payload", filename="r.bin", content_type="application/octet-stream")
    writer = form()
    body = await writer.as_bytes()
    status, _, _ = await post(proxy, "/api/files.upload", body, writer.content_type)
    assert status == 200 and double.received("files.upload")[0].body == body


# --- pass-through -----------------------------------------------------------------------------------------------


async def test_other_methods_pass_through_byte_identical_both_ways(proxy, double):
    answer = b'{"ok":true,  "members":[{"id":"U1","real_name":"Jane"}],"response_metadata":{}}'
    double.answer("users.list", raw=answer, headers={"Content-Type": "application/json; charset=utf-8",
                                                      "X-Slack-Req-Id": "req-1", "X-OAuth-Scopes": "users:read"})
    body = b"limit=2&cursor=abc%3D%3D&token=xoxb-pt"
    status, headers, received = await post(proxy, "/api/users.list?include_locale=true", body,
                                           "application/x-www-form-urlencoded",
                                           headers={"X-Slack-Retry-Num": "0", "Cookie": "session=1"})
    assert (status, received) == (200, answer)
    assert headers["X-Slack-Req-Id"] == "req-1" and headers["X-OAuth-Scopes"] == "users:read"
    [got] = double.received("users.list")
    assert got.body == body and got.query == {"include_locale": "true"}
    assert got.headers["X-Slack-Retry-Num"] == "0" and "Cookie" not in got.headers


async def test_get_calls_pass_through(proxy, double):
    client = AsyncWebClient(token="xoxb-g", base_url=api_url(proxy))
    response = await client.conversations_info(channel="C42")
    assert response["ok"] and double.received("conversations.info")[0].query["channel"] == "C42"


async def test_large_responses_stream_back_intact(proxy, double):
    big = json.dumps({"ok": True, "messages": [{"text": "x" * 100, "i": i} for i in range(20_000)]}).encode()
    double.answer("conversations.history", raw=big, headers={"Content-Type": "application/json"})
    status, _, received = await post(proxy, "/api/conversations.history", b'{"channel":"C1"}')
    assert status == 200 and received == big


async def test_host_header_and_path_cannot_redirect_the_proxy(proxy, double):
    status, _, _ = await post(proxy, "/api/chat.postMessage", b'{"channel":"C1","text":"hi"}',
                              headers={"Host": "evil.example:443", "X-Forwarded-Host": "evil.example"})
    assert status == 200 and double.received("chat.postMessage")[0].headers["Host"] == double.base_url[7:]
    for path in ("/api/..%2F..%2Fevil", "/api/chat.postMessage%3F@evil.example", "/api/http:%2F%2Fevil.example"):
        status, _, body = await post(proxy, path, b"{}")
        assert status == 404 and json.loads(body)["error"] == "unknown_method"
    assert len(double.requests) == 1


# --- webhooks -------------------------------------------------------------------------------------------------


async def test_webhook_client_posts_are_redacted(proxy, double):
    client = WebhookClient(str(proxy.make_url(HOOK)))
    response = await asyncio.to_thread(client.send, text=f"card {CARD}", blocks=[section(f"ssn {SSN}")])
    assert (response.status_code, response.body) == (200, "ok")
    [got] = double.received("webhook")
    assert got.path == HOOK
    assert_clean(got.args())
    assert got.args()["blocks"][0]["text"]["text"] == "ssn [US_SSN]"


async def test_async_webhook_client_block_is_refused_without_values(proxy, double):
    client = AsyncWebhookClient(str(proxy.make_url(HOOK)))
    response = await client.send(text=f"key {AWS_KEY}")
    assert response.status_code == 400 and response.body.startswith("pii_blocked")
    assert AWS_KEY not in response.body
    assert double.requests == []


async def test_webhook_form_payload_is_redacted(proxy, double):
    body = aiohttp.helpers.quote(json.dumps({"text": f"ssn {SSN}"}), safe="")
    status, _, _ = await post(proxy, HOOK, f"payload={body}".encode(), "application/x-www-form-urlencoded")
    assert status == 200 and double.received("webhook")[0].args() == {"text": "ssn [US_SSN]"}


async def test_unknown_webhook_paths_are_not_forwarded(proxy, double):
    status, _, body = await post(proxy, "/services/../../etc/passwd", b'{"text":"x"}')
    assert status == 404 and double.requests == []


# --- bad input --------------------------------------------------------------------------------------------------


BAD_INPUT = [
    (b'{"channel": "C1", "text": ', "application/json", 400, "invalid_json", None),
    (b'["C1"]', "application/json", 400, "json_not_object", None),
    (b'{"channel":"C1","text":"caf\xe9 ' + SSN.encode() + b'"}', "application/json", 400, "invalid_charset", None),
    (b'{"channel":"C1","text":42}', "application/json", 400, "invalid_arguments", "/text"),
    (b'{"text":"hello"}', "application/json", 400, "invalid_arguments", "/channel"),
    (json.dumps({"channel": "C1", "text": "a" * 40_001}).encode(), "application/json", 400, "msg_too_long", "/text"),
    (json.dumps({"channel": "C1", "blocks": [section("b")] * 51}).encode(), "application/json", 400,
     "invalid_blocks", "/blocks"),
    (json.dumps({"channel": "C1", "blocks": ["oops"]}).encode(), "application/json", 400, "invalid_blocks",
     "/blocks/0"),
    (json.dumps({"channel": "C1", "attachments": {"text": SSN}}).encode(), "application/json", 400,
     "invalid_arguments", "/attachments"),
    (f"channel=C1&blocks=%5B%7B{SSN}".encode(), "application/x-www-form-urlencoded", 400, "invalid_arguments",
     "/blocks"),
    (b"channel=C1&text=%ff%fe", "application/x-www-form-urlencoded", 400, "invalid_charset", None),
    (b"channel=C1&channel=C2&text=x", "application/x-www-form-urlencoded", 400, "invalid_arguments", "/channel"),
    (b"--xyz\r\nbroken", "multipart/form-data; boundary=xyz", 400, "invalid_form_data", None),
    (f"text={SSN}".encode(), "text/plain", 400, "invalid_form_data", None),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code", "path"), BAD_INPUT)
async def test_bad_input_gets_a_slack_shaped_error_naming_the_field(proxy, double, body, content_type, status,
                                                                    code, path):
    got_status, _, raw = await post(proxy, "/api/chat.postMessage", body, content_type)
    answer = json.loads(raw)
    assert (got_status, answer["ok"], answer["error"]) == (status, False, code)
    assert answer.get("path") == path
    assert SSN not in raw.decode() and "a" * 100 not in raw.decode()
    assert double.requests == []


async def test_oversized_body_is_refused_with_413(proxy, double, proxy_settings):
    body = json.dumps({"channel": "C1", "text": "x" * (proxy_settings.max_body_bytes + 10)}).encode()
    status, _, raw = await post(proxy, "/api/chat.postMessage", body)
    assert status == 413 and json.loads(raw)["error"] == "request_too_large"
    status, _, raw = await post(proxy, HOOK, body)
    assert status == 413
    assert double.requests == []
