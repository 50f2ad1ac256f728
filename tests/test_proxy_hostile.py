"""Hostile and ambiguous requests (issue 15, classes 4, 5, 6, 9): no parser differential an attacker can choose, every
error Slack-shaped JSON that echoes nothing, nothing forwarded unscanned."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from tests.factories import CARD, section
from tests.slack_double import double, proxy, proxy_settings  # noqa: F401 - fixtures

HOOK = "/services/T0ABCDEF12/B0ABCDEF34/abcdefghijklmnopqrstuvwx"
COMPACT = CARD.replace(" ", "")


async def send(proxy, path, data: bytes | None = None, *, method="POST", content_type="application/json",
               headers=None):
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        hdrs = {"Content-Type": content_type} if content_type else {}
        async with session.request(method, proxy.make_url(path), data=data,
                                   headers={**hdrs, **(headers or {})}) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.read()


def assert_slack_error(status, content_type, body, expected_status=400, code=None):
    assert status == expected_status, (status, body[:200])
    assert content_type.startswith("application/json"), content_type
    answer = json.loads(body)
    assert answer["ok"] is False and answer["error"]
    if code:
        assert answer["error"] == code, answer
    assert COMPACT not in body.decode("utf-8", "replace") and "4111" not in body.decode("utf-8", "replace")
    return answer


async def raw_exchange(proxy, request: bytes) -> bytes:
    """Send bytes on a fresh connection and read the whole answer (the server closes after an error)."""
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1 << 20), timeout=30)
    finally:
        writer.close()


def split_http(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


# --- ambiguity: one copy scanned, another read by Slack ------------------------------------------------------


@pytest.mark.parametrize(("body", "path"), [
    ('{"channel": "C1", "text": "ok", "text": "card %s"}' % CARD, "/text"),
    ('{"channel": "C1", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "ok", "text": "%s"}}]}'
     % CARD, "/blocks/0/text/text"),
    ('{"channel": "C1", "metadata": {"event_type": "t", "event_payload": {"a": 1, "a": "%s"}}}' % CARD,
     "/metadata/event_payload/a"),
])
async def test_duplicated_json_keys_are_refused_naming_the_path(proxy, double, body, path):
    answer = assert_slack_error(*await send(proxy, "/api/chat.postMessage", body.encode()), code="invalid_arguments")
    assert answer["path"] == path
    assert double.requests == []


async def test_duplicated_key_inside_a_form_blocks_string_is_refused(proxy, double):
    blocks = '[{"type": "section", "text": {"type": "mrkdwn", "text": "ok", "text": "%s"}}]' % CARD
    data = aiohttp.FormData({"channel": "C1", "blocks": blocks})()
    status, ctype, body = await send(proxy, "/api/chat.postMessage", data._value,
                                     content_type="application/x-www-form-urlencoded")
    assert assert_slack_error(status, ctype, body)["path"] == "/blocks/0/text/text"
    assert double.requests == []


async def test_the_same_argument_in_query_and_body_is_refused(proxy, double):
    body = json.dumps({"channel": "C1", "text": f"card {CARD}"}).encode()
    answer = assert_slack_error(*await send(proxy, "/api/chat.postMessage?text=ok", body), code="invalid_arguments")
    assert answer["path"] == "/text"
    assert double.requests == []


async def test_duplicated_form_field_names_are_refused_without_echoing_the_name(proxy, double):
    body = f"channel=C1&text=ok&{COMPACT}=1&{COMPACT}=2".encode()
    assert_slack_error(*await send(proxy, "/api/chat.postMessage", body,
                                   content_type="application/x-www-form-urlencoded"), code="invalid_arguments")
    assert double.requests == []


async def test_an_argument_sent_as_a_file_part_is_refused(proxy, double):
    form = aiohttp.FormData()
    form.add_field("channels", "C1")
    form.add_field("initial_comment", f"card {CARD}".encode(), filename="comment.txt", content_type="text/plain")
    form.add_field("file", b"log", filename="a.log")
    writer = form()
    answer = assert_slack_error(*await send(proxy, "/api/files.upload", await writer.as_bytes(),
                                            content_type=writer.content_type), code="invalid_arguments")
    assert answer["path"] == "/initial_comment"
    assert double.requests == []


async def test_a_get_with_a_body_is_never_forwarded_unscanned(proxy, double):
    body = json.dumps({"text": f"card {CARD}"}).encode()
    status, ctype, answer = await send(proxy, "/api/chat.postMessage?channel=C1&text=hi", body, method="GET")
    assert_slack_error(status, ctype, answer, code="invalid_arguments")
    assert double.requests == []


@pytest.mark.parametrize("method", ["chat.PostMessage", "CHAT.POSTMESSAGE", "Chat.postmessage"])
async def test_case_variants_of_a_text_method_are_scanned(proxy, double, method):
    client = AsyncWebClient(token="xoxb-case", base_url=str(proxy.make_url("/api/")))
    await client.api_call(method, json={"channel": "C1", "text": f"card {CARD}"})
    [got] = double.requests
    assert got.method == method and CARD not in got.body.decode() and COMPACT not in got.body.decode()


# --- every error Slack-shaped ----------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [150, 975, 5000])
async def test_deep_json_is_refused_with_the_limit_named(proxy, double, depth):
    body = ('{"channel": "C1", "text": "x", "metadata": {"event_type": "t", "event_payload": '
            + '{"a": ' * depth + f'"{CARD}"' + "}" * depth + "}}").encode()
    answer = assert_slack_error(*await send(proxy, "/api/chat.postMessage", body))
    assert "100" in answer["detail"]
    assert double.requests == []


@pytest.mark.parametrize(("content_type", "data"), [
    ("application/json", b"channel=C1&text=card+" + COMPACT.encode()),
    ("application/x-www-form-urlencoded", b"\xff\xfe" + COMPACT.encode()),
    ("text/plain", json.dumps({"channel": "C1", "text": COMPACT}).encode()),
    ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=text\r\n\r\n" + COMPACT.encode()),
    ("multipart/form-data; boundary=zz", b"--x\r\n" + COMPACT.encode()),
    ("application/json; charset=utf-8; boundary", b"[" * 20),
])
async def test_bodies_that_do_not_match_their_content_type_get_slack_errors(proxy, double, content_type, data):
    status, ctype, body = await send(proxy, "/api/chat.postMessage", data, content_type=content_type)
    assert status in (400, 415)
    assert_slack_error(status, ctype, body, expected_status=status)
    assert double.requests == []


@pytest.mark.parametrize("encode", [gzip.compress, zlib.compress], ids=["gzip", "deflate"])
async def test_compressed_bodies_are_decoded_and_scanned(proxy, double, encode):
    name = "gzip" if encode is gzip.compress else "deflate"
    body = encode(json.dumps({"channel": "C1", "text": f"card {CARD}"}).encode())
    status, _, _ = await send(proxy, "/api/chat.postMessage", body, headers={"Content-Encoding": name})
    assert status == 200
    [got] = double.requests
    assert "Content-Encoding" not in got.headers
    text = got.args()["text"]
    assert CARD not in text and COMPACT not in text


@pytest.mark.parametrize(("encoding", "data"), [
    ("gzip", b"\x1f\x8b\x08\x00garbage" + COMPACT.encode()),
    ("compress", COMPACT.encode()),
    ("br, gzip", COMPACT.encode()),
])
async def test_bodies_in_an_encoding_we_cannot_read_are_refused(proxy, double, encoding, data):
    status, ctype, body = await send(proxy, "/api/chat.postMessage", data, headers={"Content-Encoding": encoding})
    assert status in (400, 415)
    assert_slack_error(status, ctype, body, expected_status=status)
    assert double.requests == []


async def test_a_real_files_upload_of_140_kb_is_scanned_and_forwarded(proxy, double):
    client = AsyncWebClient(token="xoxb-files", base_url=str(proxy.make_url("/api/")))
    content = (b"log line without secrets\n" * 6000)[:140_000]
    await client.api_call("files.upload", data={"channels": "C1", "initial_comment": f"card {CARD}",
                                                "filename": "build.log"}, files={"file": content})
    [got] = double.received("files.upload")
    parts = got.parts()
    assert parts["file"] == content
    assert CARD not in parts["initial_comment"] and parts["initial_comment"].startswith("card ")


async def test_a_lone_surrogate_in_a_redacted_form_webhook_is_forwarded_escaped(proxy, double):
    payload = '{"text": "\\ud800 card %s", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\\udfff x %s"}}]}' % (CARD, CARD)
    body = aiohttp.FormData({"payload": payload})()._value
    status, _, _ = await send(proxy, HOOK, body, content_type="application/x-www-form-urlencoded")
    assert status == 200
    [got] = double.received("webhook")
    assert CARD not in got.body.decode() and COMPACT not in got.body.decode()


async def test_a_lone_surrogate_in_form_blocks_is_forwarded_escaped(proxy, double):
    blocks = json.dumps([section(f"\ud800 card {CARD}")])
    body = aiohttp.FormData({"channel": "C1", "text": "hi", "blocks": blocks})()._value
    status, _, _ = await send(proxy, "/api/chat.postMessage", body, content_type="application/x-www-form-urlencoded")
    assert status == 200
    [got] = double.requests
    assert CARD not in got.body.decode()


@pytest.mark.parametrize("request_bytes", [
    b"POST /api/chat.postMessage HTTP/1.1\r\nHost: x\r\nX-Big: " + (COMPACT.encode() + b"a") * 700
    + b"\r\nContent-Length: 0\r\n\r\n",
    b"POST /api/chat.postMessage?" + COMPACT.encode() + b" HTTP/1.1 junk\r\nHost: x\r\n\r\n",
    b"P\x00ST /api/" + COMPACT.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/chat.postMessage HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
    + COMPACT.encode(),
    b"POST /api/chat.postMessage HTTP/1.1\r\nHost: x\r\n" + COMPACT.encode() + b"\r\n\r\n",
], ids=["long-header", "bad-request-line", "nul-in-method", "two-lengths", "header-without-colon"])
async def test_malformed_http_gets_a_slack_shaped_400_that_echoes_nothing(proxy, double, request_bytes):
    status, headers, body = split_http(await raw_exchange(proxy, request_bytes))
    assert 400 <= status < 500
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["ok"] is False
    assert COMPACT.encode() not in body and b"4111" not in body
    assert double.requests == []


async def test_an_unhandled_error_is_a_slack_shaped_500(proxy, double, monkeypatch):
    from slack_pii.webapi import routes

    def explode(*args, **kwargs):
        raise RuntimeError(f"boom {CARD}")

    monkeypatch.setattr(routes, "validate_args", explode)
    status, ctype, body = await send(proxy, "/api/chat.postMessage", json.dumps({"channel": "C1"}).encode())
    assert status == 500 and ctype.startswith("application/json")
    assert json.loads(body) == {"ok": False, "error": "internal_error",
                                "detail": json.loads(body)["detail"]}
    assert CARD not in body.decode()


async def test_huge_attachments_and_blocks_are_scanned(proxy, double):
    filler = "lorem ipsum dolor sit amet " * 40_000  # ~1 MB
    body = json.dumps({"channel": "C1", "text": "x",
                       "attachments": [{"text": filler + f" card {CARD}"}],
                       "blocks": [section("y" * 2900 + f" {CARD}")]}).encode()
    status, _, answer = await send(proxy, "/api/chat.postMessage", body)
    assert status in (200, 400, 413), answer[:200]
    for got in double.requests:
        assert CARD not in got.body.decode() and COMPACT not in got.body.decode()
