"""The call codec: a Web API call read the way Slack reads it (JSON, form, multipart, query string; limits,
encodings and ambiguities refused), encoded back after redaction, and relayed; plus Slack-shaped error bodies.

Shared by the routes and the file uploads; it knows HTTP and Slack's argument rules, not the scanner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from aiohttp.streams import StreamReader

from slack_pii import messages
from slack_pii.errors import PayloadError
from slack_pii.keys import fingerprint
from slack_pii.detect.slack_text import (DuplicateKey, FieldNotJson, decode_json_fields, encode_json_fields,
                                         is_field_name, json_text, loads_strict, nesting_depth)

log = logging.getLogger("slack_pii.webapi")


CHANNEL_REQUIRED = frozenset({
    "chat.postMessage", "chat.update", "chat.postEphemeral", "chat.scheduleMessage", "chat.meMessage",
    "conversations.setTopic", "conversations.setPurpose",
})
STRING_FIELDS = ("text", "channel", "channel_id", "channels", "thread_ts", "topic", "purpose", "initial_comment",
                 "title", "user")
ARRAY_FIELDS = ("blocks", "attachments", "files")
CHANNEL_SHAPE = re.compile(r"[A-Z][A-Z0-9]{1,14}|#[a-z0-9_\-]{1,80}")
HOOK_PATH = re.compile(r"/services/T[A-Z0-9]{2,20}/B[A-Z0-9]{2,20}/[A-Za-z0-9]{8,64}")
# Request headers worth forwarding; Host, cookies, proxies' own headers and hop-by-hop ones never are.
FORWARD_HEADERS = frozenset({"authorization", "content-type", "user-agent", "accept", "accept-encoding"})
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "content-length"})
ERROR_STATUS = {"request_too_large": 413, "unsupported_encoding": 415}
# JSON nested deeper than this is refused (Block Kit needs about 10 levels; message metadata a few more).
MAX_JSON_DEPTH = 100
# Content-Encodings aiohttp decodes before we read the body (so what we scan is what Slack would read).
DECODED_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
UPSTREAM_STATUS = {"timeout": (504, "upstream_timeout"), "connection": (502, "upstream_unreachable"),
                   "disconnected": (502, "upstream_connection_lost")}
CHUNK = 64 * 1024
@dataclass
class FilePart:
    name: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class ParsedCall:
    """A text-bearing call as Slack would read it: `args` merges the query string and the body."""

    kind: str  # json | form | multipart
    args: dict[str, Any]
    raw: bytes
    token: str | None
    query_pairs: list[tuple[str, str]] = field(default_factory=list)
    body_order: list[str] = field(default_factory=list)  # body argument names in order; file parts as "\\0file<N>"
    json_fields: list[str] = field(default_factory=list)
    files: list[FilePart] = field(default_factory=list)
    rewritten: bool = False  # a file part, `content` or a file id was changed: re-encode even if args were not


# --- parsing -------------------------------------------------------------------------------------------------


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadError("request_too_large", messages.body_too_large(limit))
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in DECODED_ENCODINGS:
        raise PayloadError("unsupported_encoding", messages.unsupported_encoding())
    chunks, total = [], 0
    try:
        # NOTE: aiohttp has already undone gzip/deflate here, so `limit` bounds the decoded size (no zip bomb).
        async for chunk in request.content.iter_chunked(CHUNK):
            total += len(chunk)
            if total > limit:
                raise PayloadError("request_too_large", messages.body_too_large(limit))
            chunks.append(chunk)
    except (RequestPayloadError, HttpProcessingError):
        raise PayloadError("invalid_encoding", messages.invalid_encoding()) from None
    return b"".join(chunks)


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("invalid_charset", messages.invalid_charset(where)) from None


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object as Slack would read it, refused when a reader could read it another way (duplicated keys)
    or when it is nested deeper than MAX_JSON_DEPTH."""
    text = _decode(raw, "JSON body")
    value = _loads(text, "")
    if not isinstance(value, dict):
        raise PayloadError("json_not_object", messages.json_not_object())
    return value


def _loads(text: str, where: str) -> Any:
    try:
        value = loads_strict(text)
    except json.JSONDecodeError as exc:
        raise PayloadError("invalid_json", messages.invalid_json(exc.lineno, exc.colno)) from None
    except DuplicateKey as exc:
        path = where + _path_of(exc.path)
        raise PayloadError("invalid_arguments", messages.duplicate_field(path), path) from None
    except RecursionError:
        raise PayloadError("invalid_json", messages.json_too_deep(where or "/", MAX_JSON_DEPTH), where) from None
    if nesting_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise PayloadError("invalid_json", messages.json_too_deep(where or "/", MAX_JSON_DEPTH), where)
    return value


def _path_of(steps) -> str:
    """A JSON path for an error: field names as they are, anything else (a key that may be content) as `*`."""
    return "".join(f"/{step}" if isinstance(step, int) or is_field_name(step) else "/*" for step in steps)


def field_label(name: str) -> str:
    """A form field's name as an error may show it: only when it looks like a field name."""
    return name if is_field_name(name) else "*"


def parse_form_pairs(raw: bytes) -> list[tuple[str, str]]:
    text = _decode(raw, "form body")
    try:
        return parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise PayloadError("invalid_charset", messages.invalid_charset("form body")) from None
    except ValueError:
        raise PayloadError("invalid_form_data", messages.invalid_form("form")) from None


async def parse_multipart(raw: bytes, content_type: str) -> tuple[list[tuple[str, str]], list[FilePart], list[str]]:
    """Fields, file parts (bytes untouched) and the order of both, from a complete multipart body."""
    loop = asyncio.get_running_loop()
    # NOTE: the limit is the whole body: the stream is fed at once and must never ask the (absent) transport to
    # pause; a 64 KiB limit made every body over 128 KiB fail.
    stream = StreamReader(BaseProtocol(loop), max(2 ** 16, len(raw) + 1), loop=loop)
    stream.feed_data(raw)
    stream.feed_eof()
    fields, files, order = [], [], []
    try:
        reader = aiohttp.MultipartReader({"Content-Type": content_type}, stream)
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader) or not part.name:
                raise PayloadError("invalid_form_data", messages.invalid_form("multipart"))
            data = bytes(await part.read(decode=True))
            if part.filename is not None:
                if part.name != "file":  # Slack could read `text` sent as a file part as the argument
                    label = field_label(part.name)
                    raise PayloadError("invalid_arguments", messages.file_part_not_file(f"/{label}"), f"/{label}")
                files.append(FilePart(part.name, part.filename,
                                      part.headers.get("Content-Type", "application/octet-stream"), data))
                order.append(f"\0file{len(files) - 1}")
            else:
                fields.append((part.name, _decode(data, f"field `{field_label(part.name)}`")))
                order.append(part.name)
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError):
        raise PayloadError("invalid_form_data", messages.invalid_form("multipart")) from None
    return fields, files, order


def _single(pairs: list[tuple[str, str]], where: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            label = field_label(name)
            raise PayloadError("invalid_arguments", messages.duplicate_field(f"{where}/{label}"), f"/{label}")
        values[name] = value
    return values


def _decode_json_strings(args: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Decode form-style JSON-string fields (blocks, attachments …) with the same strictness as a JSON body."""
    try:
        decoded, names = decode_json_fields(args)
    except FieldNotJson as exc:
        raise PayloadError("invalid_arguments", messages.field_not_json(f"/{exc.field}"), f"/{exc.field}") from None
    except DuplicateKey as exc:
        path = _path_of(exc.path)
        raise PayloadError("invalid_arguments", messages.duplicate_field(path), path) from None
    for name in names:
        if nesting_depth(decoded[name], MAX_JSON_DEPTH - 1) > MAX_JSON_DEPTH - 1:
            raise PayloadError("invalid_json", messages.json_too_deep(f"/{name}", MAX_JSON_DEPTH), f"/{name}")
    return decoded, names


async def parse_call(request: web.Request, settings) -> ParsedCall:
    """Read and parse a text-bearing call: query string plus a JSON, form or multipart body (or none, for GET);
    the token from the Authorization header, the body or the query string."""
    content_type = request.content_type
    limit = settings.max_upload_bytes if content_type == "multipart/form-data" else settings.max_body_bytes
    raw = await read_body(request, limit)
    query_pairs = list(request.query.items())
    query = _single(query_pairs, "query ")
    files: list[FilePart] = []
    if request.method == "GET" and raw:
        raise PayloadError("invalid_arguments", messages.get_with_body())
    if not raw:
        kind, body, order = "query", {}, []
    elif content_type == "application/json":
        kind, body = "json", parse_json_object(raw)
        order = list(body)
    elif content_type == "application/x-www-form-urlencoded":
        pairs = parse_form_pairs(raw)
        kind, body, order = "form", _single(pairs, ""), [name for name, _ in pairs]
    elif content_type == "multipart/form-data":
        fields, files, order = await parse_multipart(raw, request.headers["Content-Type"])
        kind, body = "multipart", _single(fields, "")
    else:
        raise PayloadError("invalid_form_data", messages.unsupported_content_type())
    # NOTE: the token stays in args (it is forwarded as sent); it is not a text key, so it is never scanned.
    token = body.get("token") if isinstance(body.get("token"), str) else query.get("token")
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        token = auth[7:].strip()
    both = [name for name in body if name in query]
    if both:
        label = field_label(both[0])
        raise PayloadError("invalid_arguments", messages.query_and_body(f"/{label}"), f"/{label}")
    args, json_fields = _decode_json_strings({**query, **body})
    return ParsedCall(kind, args, raw, token, query_pairs, order, json_fields, files)


def parse_hook_body(raw: bytes, content_type: str) -> tuple[dict[str, Any], bool]:
    """An incoming-webhook body: JSON, or a form with a `payload` JSON field (both are accepted by Slack)."""
    # NOTE: `curl -d '{...}'` sends JSON labelled as a form; Slack reads it as JSON, so do we.
    if content_type == "application/x-www-form-urlencoded" and not raw.lstrip().startswith(b"{"):
        form = _single(parse_form_pairs(raw), "")
        if "payload" not in form:
            raise PayloadError("invalid_payload", messages.field_required("/payload"), "/payload")
        return parse_json_object(form["payload"].encode("utf-8", "surrogatepass")), True
    return parse_json_object(raw), False


def validate_args(method: str, args: dict[str, Any], settings) -> None:
    """Reject what Slack would reject, before scanning: wrong types, missing channel, Slack's size limits."""
    for name in STRING_FIELDS:
        if name in args and not isinstance(args[name], str):
            raise PayloadError("invalid_arguments", messages.field_must_be(f"/{name}", "a string"), f"/{name}")
    for name in ARRAY_FIELDS:
        if name in args and not isinstance(args[name], list):
            raise PayloadError("invalid_arguments", messages.field_must_be(f"/{name}", "an array"), f"/{name}")
    if "unfurls" in args and not isinstance(args["unfurls"], dict):
        raise PayloadError("invalid_arguments", messages.field_must_be("/unfurls", "an object"), "/unfurls")
    if method in CHANNEL_REQUIRED and not args.get("channel"):
        raise PayloadError("invalid_arguments", messages.field_required("/channel"), "/channel")
    if len(args.get("text") or "") > settings.max_text_chars:
        raise PayloadError("msg_too_long", messages.text_too_long("/text", settings.max_text_chars), "/text")
    blocks = args.get("blocks") or []
    if len(blocks) > settings.max_blocks:
        raise PayloadError("invalid_blocks", messages.too_many_blocks("/blocks", settings.max_blocks), "/blocks")
    for index, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise PayloadError("invalid_blocks", messages.field_must_be(f"/blocks/{index}", "an object"),
                               f"/blocks/{index}")
    for index, attachment in enumerate(args.get("attachments") or []):
        if not isinstance(attachment, dict):
            raise PayloadError("invalid_attachments", messages.field_must_be(f"/attachments/{index}", "an object"),
                               f"/attachments/{index}")


def channel_of(args: dict[str, Any]) -> str | None:
    for name in ("channel", "channel_id", "channels"):
        value = args.get(name)
        if isinstance(value, str) and value:
            return value.split(",", 1)[0].strip()[:80]
    return None


# --- encoding and relaying ----------------------------------------------------------------------------------


def channel_label(channel: str | None, key: bytes) -> str | None:
    """The channel as logs, metrics and audit rows may hold it: an id or `#name`, else a keyed fingerprint (a card
    number typed into `channel` must not be stored or logged verbatim)."""
    if channel is None or CHANNEL_SHAPE.fullmatch(channel) and sum(c.isdigit() for c in channel) <= 12:
        return channel
    return "fp:" + fingerprint(channel, key)[:16]


async def encode_call(call: ParsedCall, redacted: dict[str, Any]) -> tuple[bytes, str, str]:
    """(body, query string, content type) carrying the redacted arguments in the call's own encoding.

    Each argument goes back where it came from (body or query string), JSON-string fields as JSON strings.
    """
    args = encode_json_fields(redacted, call.json_fields)
    in_body = set(call.body_order)
    query = urlencode([(name, value if name in in_body else args.get(name, value))
                       for name, value in call.query_pairs])
    if call.kind == "query":
        return b"", query, ""
    if call.kind == "json":
        body_args = {name: args[name] for name in call.body_order if name in args}
        return json_text(body_args).encode("utf-8"), query, "application/json; charset=utf-8"
    if call.kind == "form":
        pairs = [(name, args[name]) for name in call.body_order if name in args]
        return urlencode(pairs).encode("ascii"), query, "application/x-www-form-urlencoded"
    form = aiohttp.FormData()
    for name in call.body_order:
        if name.startswith("\0file"):
            part = call.files[int(name[5:])]
            form.add_field(part.name, part.data, filename=part.filename, content_type=part.content_type)
        elif name in args:
            form.add_field(name, args[name])
    writer = form()
    return await writer.as_bytes(), query, writer.content_type


def forward_headers(request: web.Request) -> dict[str, str]:
    return {name: value for name, value in request.headers.items()
            if name.lower() in FORWARD_HEADERS or name.lower().startswith("x-slack-")}


async def relay(request: web.Request, upstream_response: aiohttp.ClientResponse,
                extra_headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Slack's answer, streamed back unchanged: status, headers (minus hop-by-hop), body bytes."""
    response = web.StreamResponse(status=upstream_response.status, reason=upstream_response.reason)
    for name, value in upstream_response.headers.items():
        if name.lower() not in HOP_BY_HOP:
            response.headers.add(name, value)
    response.headers.update(extra_headers or {})
    if upstream_response.content_length is not None:
        response.content_length = upstream_response.content_length
    await response.prepare(request)
    try:
        async for chunk in upstream_response.content.iter_chunked(CHUNK):
            await response.write(chunk)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        # Headers are gone already: the honest signal left is a cut connection, never a short "complete" body.
        log.warning(messages.upstream_broken())
        response.force_close()
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def closing_if_unread(request: web.Request, response: web.Response) -> web.Response:
    """A refusal sent before the body was read ends the connection (Connection: close): the unread rest of the
    body must not be taken for the next request, and the client must not reuse a connection we drop."""
    if request.body_exists and not request.content.at_eof():
        response.force_close()
    return response


def api_error(status: int, code: str, detail: str, path: str = "", headers: dict[str, str] | None = None) -> web.Response:
    body = {"ok": False, "error": code, "detail": detail}
    if path:
        body["path"] = path
    return web.json_response(body, status=status, headers=headers)


def api_refusal(code: str, detail: str, **extra: Any) -> web.Response:
    """Slack's own refusal shape (HTTP 200, ok false), so slack_sdk raises SlackApiError with `code`."""
    return web.json_response({"ok": False, "error": code, **extra, "detail": detail})

