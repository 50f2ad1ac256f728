"""Generated Slack requests for the fuzz harness: payloads in every encoding Slack accepts (JSON, form, multipart,
query string, webhooks, gzip), deep and huge shapes, disguised canaries and parser differentials.

A `Case` is what goes on the wire plus the canaries planted in it. Canaries go only into text-bearing calls, so
the rule the harness checks is simple: no canary may reach the Slack double, a log, the store, /metrics or an
answer. Pass-through calls carry none (they are forwarded unscanned by design).
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass, field
from urllib.parse import urlencode

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from tests.factories import AWS_KEY, SLACK_BOT
from tests.fuzz.disguise import disguised

CARD = "4111 1111 1111 1111"
# name -> (value as planted before disguise, the form checked for: what a reader would make of it)
CANARIES = {"card": (CARD, "4111111111111111"), "aws": (AWS_KEY, AWS_KEY), "slack": (SLACK_BOT, SLACK_BOT)}
HOOK = "/services/T0FUZZ0001/B0FUZZ0001/fuzzfuzzfuzzfuzzfuzzfuzz"
TEXT_METHODS = ["chat.postMessage", "chat.postEphemeral", "chat.update", "chat.scheduleMessage",
                "chat.PostMessage", "CHAT.POSTMESSAGE"]
PLACES = ["text", "section", "rich_text", "attachment", "field_value", "username", "markdown_text", "metadata",
          "block_id", "unfurl_key", "unfurl_value", "mention_label", "channel_label", "date_fallback", "link_label",
          "link_target", "number", "unknown_key", "unknown_value", "channel_name", "huge_attachment", "deep",
          "context", "topic"]
ENCODINGS = ["json", "json_ascii", "form", "multipart", "query_get", "query_post", "webhook_json", "webhook_form",
             "json_gzip", "json_deflate"]
HOSTILE = ["dup_json_key", "dup_block_key", "query_and_body", "dup_form_field", "get_with_body", "wrong_type",
           "deep_json", "long_header", "bad_request_line", "no_boundary", "bad_gzip", "unknown_encoding"]


@dataclass
class Case:
    """One request. `raw` bytes are sent as they are on a fresh socket (malformed HTTP); otherwise an HTTP call."""

    label: str
    http_method: str = "POST"
    path: str = "/api/chat.postMessage"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    raw: bytes | None = None
    canaries: tuple[str, ...] = ()  # names from CANARIES
    huge: bool = False


def _words(rng: random.Random, count: int) -> str:
    pool = ["deploy", "ticket", "the", "build", "green", "ok", "see", "logs", "ping", "thanks", "Jane", "release",
            ":tada:", "<@U024BE7LH>", "<!here>", "&amp;", "`code`", "*bold*", "שלום", "👍", "\u200b"]
    return " ".join(rng.choice(pool) for _ in range(count))


@st.composite
def canary_values(draw) -> tuple[str, str]:
    """(name, text): a canary, plain or disguised with look-alikes, invisible characters and odd separators."""
    name = draw(st.sampled_from(sorted(CANARIES)))
    value = CANARIES[name][0]
    if draw(st.booleans()):
        compact = value.replace(" ", "")
        value = draw(disguised(compact, 4 if name == "card" else 0))
    return name, value


def _place(payload: dict, place: str, value: str, name: str, rng: random.Random) -> dict:
    """Put `value` where Slack stores or shows it."""
    if place == "text":
        payload["text"] = f"{_words(rng, 3)} {value} {_words(rng, 2)}"
    elif place == "section":
        payload["blocks"] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"see {value}"}}]
    elif place == "rich_text":
        payload["blocks"] = [{"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
            {"type": "text", "text": "value "}, {"type": "text", "text": value, "style": {"code": True}}]}]}]
    elif place == "attachment":
        payload["attachments"] = [{"fallback": "x", "text": value, "color": "good"}]
    elif place == "field_value":
        payload["attachments"] = [{"fields": [{"title": "Card", "value": value, "short": True}]}]
    elif place == "context":
        payload["blocks"] = [{"type": "context", "elements": [{"type": "mrkdwn", "text": value}]}]
    elif place in ("username", "markdown_text", "topic"):
        payload[place] = f"x {value}"
    elif place == "metadata":
        payload["metadata"] = {"event_type": "fuzz", "event_payload": {"note": value, "list": [1, value]}}
    elif place == "block_id":
        payload["blocks"] = [{"type": "section", "block_id": value, "text": {"type": "mrkdwn", "text": "ok"}}]
    elif place == "unfurl_key":
        payload["unfurls"] = {f"https://x.test/{value}": {"text": "ok"}}
    elif place == "unfurl_value":
        payload["unfurls"] = {"https://x.test/a": {"text": value}}
    elif place == "mention_label":
        payload["text"] = f"ping <@U024BE7LH|{value}> now"
    elif place == "channel_label":
        payload["text"] = f"in <#C024BE7LR|{value}>"
    elif place == "date_fallback":
        payload["text"] = f"<!date^1700000000^{{date_short}}|{value}>"
    elif place == "link_label":
        payload["text"] = f"<https://x.test|{value}>"
    elif place == "link_target":
        payload["text"] = f"<https://x.test/?q={value}|docs>"
    elif place == "number":
        if name == "card":
            payload["attachments"] = [{"fields": [{"title": "n", "value": 4111111111111111}]}]
        else:
            payload["text"] = value
    elif place == "unknown_key":
        payload["brand_new"] = {value: "x"}
    elif place == "unknown_value":
        payload["brand_new"] = {"deep": [{"x": value}]}
    elif place == "channel_name":
        payload["channel"] = value
    elif place == "huge_attachment":
        payload["attachments"] = [{"text": "lorem ipsum dolor " * rng.randint(10_000, 55_000) + value}]
    elif place == "deep":
        node: dict = {}
        payload["metadata"] = {"event_type": "fuzz", "event_payload": node}
        for _ in range(rng.randint(5, 90)):
            node["n"] = {}
            node = node["n"]
        node["v"] = value
    return payload


def _flat(payload: dict) -> dict[str, str]:
    """Form/query arguments: objects as JSON strings, everything else as text."""
    return {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in payload.items()}


def _multipart(fields: dict[str, str], boundary: str = "fuzzb0undary") -> tuple[bytes, str]:
    parts = []
    for name, value in fields.items():
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode()
                     + value.encode("utf-8", "surrogatepass") + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def encode(payload: dict, encoding: str, method: str, label: str, canaries: tuple[str, ...]) -> Case:
    path = f"/api/{method}"
    if encoding.startswith("json"):
        body = json.dumps(payload, ensure_ascii=encoding == "json_ascii").encode("utf-8", "surrogatepass")
        headers = {"Content-Type": "application/json; charset=utf-8", "Authorization": "Bearer xoxb-fuzz"}
        if encoding == "json_gzip":
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        elif encoding == "json_deflate":
            import zlib

            body, headers["Content-Encoding"] = zlib.compress(body), "deflate"
        return Case(label, "POST", path, headers, body, canaries=canaries)
    if encoding == "form":
        return Case(label, "POST", path, {"Content-Type": "application/x-www-form-urlencoded"},
                    urlencode(_flat(payload)).encode(), canaries=canaries)
    if encoding == "multipart":
        body, content_type = _multipart(_flat(payload))
        return Case(label, "POST", path, {"Content-Type": content_type}, body, canaries=canaries)
    if encoding in ("query_get", "query_post"):
        query = urlencode(_flat(payload))
        return Case(label, "GET" if encoding == "query_get" else "POST", f"{path}?{query}", {}, b"",
                    canaries=canaries)
    hook = payload
    if encoding == "webhook_json":
        return Case(label, "POST", HOOK, {"Content-Type": "application/json"},
                    json.dumps(hook).encode(), canaries=canaries)
    return Case(label, "POST", HOOK, {"Content-Type": "application/x-www-form-urlencoded"},
                urlencode({"payload": json.dumps(hook)}).encode(), canaries=canaries)


def hostile(kind: str, name: str, value: str) -> Case:
    """Differentials and malformed requests; every one must be refused (or scanned) and echo nothing."""
    path, label, canaries = "/api/chat.postMessage", f"hostile:{kind}", (name,)
    j = {"Content-Type": "application/json"}
    quoted = json.dumps(value)
    if kind == "dup_json_key":
        return Case(label, "POST", path, j, ('{"channel": "C0123456789", "text": "ok", "text": %s}' % quoted).encode(),
                    canaries=canaries)
    if kind == "dup_block_key":
        body = ('{"channel": "C0123456789", "blocks": [{"type": "section", "text": {"type": "mrkdwn", '
                '"text": "ok", "text": %s}}]}' % quoted)
        return Case(label, "POST", path, j, body.encode(), canaries=canaries)
    if kind == "query_and_body":
        return Case(label, "POST", path + "?text=ok", j, json.dumps({"channel": "C0123456789", "text": value}).encode(),
                    canaries=canaries)
    if kind == "dup_form_field":
        body = urlencode([("channel", "C0123456789"), ("text", "ok"), ("text", value)]).encode()
        return Case(label, "POST", path, {"Content-Type": "application/x-www-form-urlencoded"}, body,
                    canaries=canaries)
    if kind == "get_with_body":
        return Case(label, "GET", path + "?channel=C0123456789&text=hi", j, json.dumps({"text": value}).encode(),
                    canaries=canaries)
    if kind == "wrong_type":
        return Case(label, "POST", path, {"Content-Type": "text/plain"},
                    json.dumps({"channel": "C0123456789", "text": value}).encode(), canaries=canaries)
    if kind == "deep_json":
        depth = 150 + len(value) * 37 % 3000
        body = '{"channel": "C0123456789", "metadata": {"event_payload": ' + '{"a": ' * depth + quoted + "}" * depth
        return Case(label, "POST", path, j, (body + "}}").encode(), canaries=canaries)
    if kind == "no_boundary":
        return Case(label, "POST", path, {"Content-Type": "multipart/form-data"},
                    b"--x\r\nContent-Disposition: form-data; name=text\r\n\r\n" + value.encode() + b"\r\n--x--\r\n",
                    canaries=canaries)
    if kind == "bad_gzip":
        return Case(label, "POST", path, {**j, "Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00" + value.encode(),
                    canaries=canaries)
    if kind == "unknown_encoding":
        return Case(label, "POST", path, {**j, "Content-Encoding": "br"},
                    json.dumps({"channel": "C0123456789", "text": value}).encode(), canaries=canaries)
    ascii_value = value.encode("ascii", "ignore").replace(b" ", b"")
    if kind == "long_header":
        raw = (b"POST /api/chat.postMessage HTTP/1.1\r\nHost: x\r\nX-Fuzz: " + (ascii_value + b"a") * 600
               + b"\r\nContent-Length: 0\r\n\r\n")
    else:  # bad_request_line
        raw = b"POST /api/chat.postMessage?" + ascii_value + b" HTTP/1.1 junk\r\nHost: x\r\n\r\n"
    return Case(label, raw=raw, canaries=canaries)


@st.composite
def cases(draw, allow_huge: bool = True) -> Case:
    rng = random.Random(draw(st.integers(0, 2 ** 32)))
    roll = draw(st.integers(0, 99))
    if roll < 8:  # pass-through: forwarded unscanned by design, so it carries no canary
        method = draw(st.sampled_from(["users.list", "conversations.info", "auth.test"]))
        return Case("passthrough", draw(st.sampled_from(["GET", "POST"])), f"/api/{method}?channel=C0123456789",
                    {"Authorization": "Bearer xoxb-fuzz"})
    name, value = draw(canary_values())
    if roll < 30:
        return hostile(draw(st.sampled_from(HOSTILE)), name, value)
    places = PLACES if allow_huge else [p for p in PLACES if p != "huge_attachment"]
    place = draw(st.sampled_from(places))
    payload = {"channel": "C0123456789", "text": _words(rng, rng.randint(1, 8))}
    method = draw(st.sampled_from(TEXT_METHODS))
    if method == "chat.update":
        payload["ts"] = "1700000000.000100"
    elif method == "chat.scheduleMessage":
        payload["post_at"] = 1900000000
    elif method == "chat.postEphemeral":
        payload["user"] = "U024BE7LH"
    if place == "topic":
        method, payload = "conversations.setTopic", {"channel": "C0123456789"}
    payload = _place(payload, place, value, name, rng)
    encoding = draw(st.sampled_from(ENCODINGS))
    if place == "huge_attachment" and encoding.startswith("query"):
        encoding = "json"
    case = encode(payload, encoding, method, f"{place}:{encoding}", (name,))
    case.huge = place == "huge_attachment"
    return case


def generate(count: int, seed: int = 0, allow_huge: bool = True) -> list[Case]:
    """`count` cases (fewer if hypothesis runs out of distinct ones), the same for the same seed."""
    found: list[Case] = []

    @hypothesis_seed(seed)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(cases(allow_huge))
    def collect(case: Case) -> None:
        found.append(case)

    collect()
    return found


__all__ = ["CANARIES", "Case", "generate"]
