"""Every Block Kit payload the app builds renders: within Block Kit's limits, even for extreme inputs."""

from __future__ import annotations

import json

import pytest

from slack_pii.slackapp import blocks
from slack_pii.slackapp.blocks import Summary

ONE = Summary("redact", ("US_SSN",), ("us-ssn",), ("government_id",))
MANY = Summary("block", tuple(f"ENTITY_TYPE_NUMBER_{i:03d}" for i in range(80)),
               tuple(f"rule-id-number-{i:03d}" for i in range(80)), ("credential", "financial", "government_id",
                                                                     "personal", "contact", "network"))
LONG = "x" * 45_000
WEIRD = "‏שלום <!channel> *bold* `code`\n" * 400  # RTL, mentions, mrkdwn, many lines
HELD_ID = "AbCdEfGhIjKlMnOpQrStUv"


def payloads():
    for summary in (ONE, MANY):
        for text in ("short", LONG, WEIRD):
            for original in (True, False):
                yield "message", blocks.preview(HELD_ID, text, summary, can_send_original=original,
                                                can_edit=not original, ttl_minutes=15)
            yield "modal", blocks.edit_modal(json.dumps({"id": HELD_ID, "r": "https://hooks.slack.com/x" * 3}), text)
            yield "modal", blocks.compose_modal("C0123", text)
            yield "message", blocks.sent_by(text, "U1", "/safe")
            yield "message", blocks.status(text)
        for can_edit in (True, False):
            yield "message", blocks.passive_warning(HELD_ID, "C0123", summary, can_edit=can_edit, ttl_minutes=15)
        yield "modal", blocks.reason_modal(HELD_ID, summary)
        yield "message", blocks.blocked_dm("C0123", summary, "the workflow step")
        yield "message", blocks.blocked_dm(None, summary, "the workflow step")
    yield "modal", blocks.compose_modal()


@pytest.mark.parametrize("surface,payload", list(payloads()))
def test_every_payload_renders(surface, payload):
    assert blocks.problems(payload, surface=surface) == []


def test_button_values_are_the_held_id_only():
    body = blocks.preview(HELD_ID, "the secret text", ONE, can_send_original=True, can_edit=True, ttl_minutes=15)
    values = {e["value"] for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]}
    assert values == {HELD_ID}


@pytest.mark.parametrize("broken,expected", [
    ({"blocks": [blocks.section("x")] * 51}, "51 blocks"),
    ({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]}, "3001 chars"),
    ({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]}, "151 chars"),
    ({"blocks": [{"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "x" * 76}, "action_id": "a", "value": "v"}]}]},
     "76 chars"),
    ({"blocks": [{"type": "actions", "block_id": "b" * 256, "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "ok"}, "action_id": "a" * 256, "value": "v"}]}]},
     "too long"),
    ({"blocks": [{"type": "actions", "elements": [
        {"type": "button", "text": {"type": "mrkdwn", "text": "ok"}, "action_id": "a", "value": "v"}]}]},
     "must be plain_text"),
    ({"blocks": [blocks.text_input("m", "i", "label")]}, "input block outside a modal"),
    ({"blocks": [{"type": "section", "block_id": "same", "text": blocks.mrkdwn("a")},
                 {"type": "section", "block_id": "same", "text": blocks.mrkdwn("b")}]}, "duplicate block_id"),
    ({"blocks": [{"type": "video"}]}, "unknown block type"),
])
def test_the_validator_catches_what_slack_would_reject(broken, expected):
    assert any(expected in p for p in blocks.problems(broken))


def test_modal_limits():
    view = blocks.modal("cb", "A title longer than twenty-four", [blocks.section("x")] * 101, submit="Go")
    view["title"]["text"] = "A title longer than twenty-four"  # bypass the builder's clipping
    found = blocks.problems(view, surface="modal")
    assert any("101 blocks" in p for p in found) and any(p.startswith("title") for p in found)
    assert blocks.problems(blocks.modal("cb", "ok", [blocks.section("x")] * 100, submit="Go"), surface="modal") == []


def test_clipped_text_is_marked():
    assert blocks.clip("abcdef", 4) == "abc…" and blocks.clip("abc", 4) == "abc"
