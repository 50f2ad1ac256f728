"""Slack payload walking and mrkdwn handling: what a user would notice if we got Slack's formats wrong."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from slack_pii.detect.slack_text import (KeyName, build_scan_text, decode_json_fields, encode_json_fields,
                                         extract_segments, is_structure, reassemble)
from tests.factories import AWS_KEY, CARD, EMAIL, SLACK_BOT, SSN, message, section

PAYLOADS = sorted((Path(__file__).parent / "data" / "payloads").glob("*.json"))


def _strings(node, path=()):
    """Every string leaf with its path (what a naive walker would see)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, path + (index,))
    elif isinstance(node, str):
        yield path, node


@pytest.mark.parametrize("fixture", PAYLOADS, ids=lambda p: p.stem)
def test_reassemble_without_edits_is_identity(fixture):
    payload = json.loads(fixture.read_text())
    original = copy.deepcopy(payload)
    assert reassemble(payload, {}) == original
    segments = extract_segments(payload)
    assert reassemble(payload, {s.path: s.text for s in segments}) == original
    assert payload == original  # the walk never mutates its input


@pytest.mark.parametrize("fixture", PAYLOADS, ids=lambda p: p.stem)
def test_every_visible_text_is_a_segment(fixture):
    payload = json.loads(fixture.read_text())
    paths = {s.path for s in extract_segments(payload)}
    visible_keys = {"text", "pretext", "fallback", "title", "footer", "value", "initial_comment", "topic",
                    "alt_text", "author_name", "url", "title_link", "filename"}
    for path, value in _strings(payload):
        if path[-1] in visible_keys and value:
            assert path in paths, f"{path} is user-visible but not scanned"


def test_structure_is_not_scanned():
    payload = json.loads((PAYLOADS[0].parent / "chat_post_blocks.json").read_text())
    paths = {s.path for s in extract_segments(payload)}
    for path in paths:
        assert path[-1] not in {"type", "user_id", "channel", "image_url", "color", "style", "ts"}


@pytest.mark.parametrize("fixture", PAYLOADS, ids=lambda p: p.stem)
def test_every_leaf_is_scanned_or_documented_structure(fixture):
    """The walker's contract: a string or number leaf is a segment unless it is a NON_CONTENT key in its shape."""
    payload = json.loads(fixture.read_text())
    paths = {s.path for s in extract_segments(payload)}
    for path, value in _leaves(payload):
        if path not in paths:
            assert is_structure(path[-1] if not isinstance(path[-1], int) else _list_key(path), value), path


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, path + (index,))
    elif isinstance(node, (str, int, float)) and not (isinstance(node, str) and not node):
        yield path, node


def _list_key(path):
    return next((step for step in reversed(path) if isinstance(step, str)), None)


# What Slack stores that an older walker skipped (issue 15, class 3): each must be a segment.
STORED_ELSEWHERE = [
    ({"channel": "C1", "username": f"bot {CARD}"}, ("username",)),
    ({"channel": "C1", "markdown_text": f"**card** {CARD}"}, ("markdown_text",)),
    ({"channel": "C1", "metadata": {"event_type": "t", "event_payload": {"note": CARD}}},
     ("metadata", "event_payload", "note")),
    ({"channel": "C1", "blocks": [{"type": "section", "block_id": CARD, "text": {"type": "mrkdwn", "text": "x"}}]},
     ("blocks", 0, "block_id")),
    ({"channel": "C1", "content": f"log line {CARD}"}, ("content",)),
    ({"channel": "C1", "brand_new_field": {"deep": [CARD]}}, ("brand_new_field", "deep", 0)),
    ({"channel": "C1", "text": 4111111111111111}, ("text",)),
    ({"channel": "C1", "attachments": [{"fields": [{"title": "t", "value": 4111111111111111}]}]},
     ("attachments", 0, "fields", 0, "value")),
    ({"channel": CARD, "text": "hi"}, ("channel",)),  # not a channel id's shape: scanned
    ({"channel": "C1", "attachments": [{"color": CARD, "image_url": f"https://x.test/i.png?c={CARD}"}]},
     ("attachments", 0, "image_url")),
]


@pytest.mark.parametrize(("payload", "path"), STORED_ELSEWHERE, ids=lambda v: "/".join(map(str, v)) if
                         isinstance(v, tuple) else None)
def test_fields_slack_stores_are_segments(payload, path):
    segments = {s.path: s for s in extract_segments(payload)}
    assert path in segments
    assert CARD.replace(" ", "") in segments[path].scan.text.replace(" ", "")


def test_unfurl_keys_are_scanned_and_renamed_on_redaction():
    url = f"https://x.test/card/{CARD.replace(' ', '')}"
    payload = {"channel": "C1", "ts": "1.2", "unfurls": {url: {"text": "ok"}, "https://y.test": {"text": CARD}}}
    segments = extract_segments(payload)
    [key] = [s for s in segments if isinstance(s.path[-1], KeyName) and s.text == url]
    assert key.kind == "url" and key.where == "/unfurls/{key}"
    edits = {key.path: "https://x.test/card/[CREDIT_CARD]", ("unfurls", url, "text"): "fine",
             ("unfurls", "https://y.test", "text"): "[CREDIT_CARD]"}
    edited = reassemble(payload, edits)
    assert list(edited["unfurls"]) == ["https://x.test/card/[CREDIT_CARD]", "https://y.test"]
    assert edited["unfurls"]["https://x.test/card/[CREDIT_CARD]"] == {"text": "fine"}
    assert payload["unfurls"][url] == {"text": "ok"}  # input untouched


def test_paths_in_logs_never_show_a_key_that_is_content():
    payload = {"channel": "C1", "metadata": {"event_type": "t", "event_payload": {CARD: {"n": "x"}}}}
    wheres = [s.where for s in extract_segments(payload)]
    assert wheres and all(CARD not in w and "4111" not in w for w in wheres)


def test_numbers_round_trip_unless_redacted():
    payload = {"channel": "C1", "text": 4111111111111111, "ts": 1700000000.5, "n": 3}
    [segment] = extract_segments(payload)
    assert segment.text == "4111111111111111"
    assert reassemble(payload, {segment.path: segment.text}) == payload
    assert reassemble(payload, {segment.path: "[CREDIT_CARD]"})["text"] == "[CREDIT_CARD]"


def test_walk_survives_deep_nesting():
    payload: dict = {"channel": "C1"}
    node = payload
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    node["text"] = CARD
    [segment] = extract_segments(payload)
    assert len(segment.path) == 5001


def test_edit_changes_only_its_path():
    payload = message("card " + CARD, blocks=[section("hi " + CARD)])
    edited = reassemble(payload, {("blocks", 0, "text", "text"): "hi [CREDIT_CARD]"})
    assert edited["blocks"][0]["text"]["text"] == "hi [CREDIT_CARD]"
    assert edited["text"] == payload["text"] and edited["channel"] == payload["channel"]
    assert payload["blocks"][0]["text"]["text"] == "hi " + CARD  # input untouched


def test_form_json_fields_round_trip():
    form = {"channel": "C1", "text": "x", "blocks": json.dumps([section("a")]), "attachments": "[]"}
    decoded, names = decode_json_fields(form)
    assert decoded["blocks"][0]["text"]["text"] == "a" and set(names) == {"blocks", "attachments"}
    assert json.loads(encode_json_fields(decoded, names)["blocks"]) == json.loads(form["blocks"])


def test_form_json_field_error_names_the_field_not_the_content():
    with pytest.raises(ValueError) as info:
        decode_json_fields({"blocks": '[{"type": "section", "text": ' + SSN})
    assert "blocks" in str(info.value) and SSN not in str(info.value)


# --- mrkdwn scan text -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "hidden", "shown"), [
    ("ping <@U024BE7LH> now", ["U024BE7LH"], ["ping", "now"]),
    ("in <#C024BE7LR|general> please", ["C024BE7LR"], ["general"]),
    ("<!here> deploy", ["here"], ["deploy"]),
    ("<!subteam^S0614TZR7|@oncall> hi", ["S0614TZR7", "subteam"], ["@oncall"]),
    (":white_check_mark: done :skin-tone-2:", ["white_check_mark", "skin"], ["done"]),
    ("<!date^1392734382^{date_short}|Feb 18, 2014>", ["1392734382"], ["Feb 18, 2014", "{date_short}"]),
])
def test_ids_and_emoji_are_hidden_labels_are_read(text, hidden, shown):
    scan = build_scan_text(text)
    for value in hidden:
        assert value not in scan.text
    for value in shown:
        assert value in scan.text


# Values inside Slack's own tokens (issue 15, class 1): read like text, the id never.
IN_TOKENS = [
    f"ping <@U024BE7LH|{CARD}> now",
    f"see <#C024BE7LR|{CARD}>",
    f"<!subteam^S0614TZR7|{CARD}>",
    f"<!date^1700000000^{{date_short}}|{AWS_KEY}>",
    f"<!date^1700000000^{{date_short}} {CARD}^https://x.test|ok>",
    "<https://x.test|4111\u200b1111\u200b1111\u200b1111>",
    "<https://x.test/?n=4111\u20631111\u20631111\u20631111|docs>",
]


@pytest.mark.parametrize("text", IN_TOKENS)
def test_values_inside_mentions_dates_and_links_are_read(text):
    scan = build_scan_text(text)
    assert CARD.replace(" ", "") in scan.text.replace(" ", "") or AWS_KEY in scan.text


@pytest.mark.parametrize("text", IN_TOKENS)
def test_values_inside_tokens_are_redacted_and_tokens_stay_valid(scanner, text):
    outcome = scanner.scan(text)
    assert outcome.findings, text
    redacted = outcome.redacted
    visible = redacted.replace("\u200b", "").replace("\u2063", "").replace(" ", "")
    assert CARD.replace(" ", "") not in visible and AWS_KEY not in redacted
    assert redacted.count("<") == redacted.count(">")
    for token_id in ("U024BE7LH", "C024BE7LR", "S0614TZR7", "1700000000"):
        if token_id in text:
            assert token_id in redacted  # the id is never what gets redacted


def test_emoji_shaped_digits_are_text():
    scan = build_scan_text(f":{CARD.replace(' ', '-')}: :100: :tada:")
    assert CARD.replace(" ", "-") in scan.text and "tada" not in scan.text and "100" not in scan.text


def test_entities_are_decoded_and_offsets_map_back_exactly():
    text = "a &amp; b &lt;x&gt; mail " + EMAIL
    scan = build_scan_text(text)
    assert scan.text.startswith("a & b <x> mail ")
    start = scan.text.index(EMAIL)
    assert scan.to_original(start, start + len(EMAIL)) == (text.index(EMAIL), len(text))
    amp = scan.text.index("&")
    assert scan.to_original(amp, amp + 1) == (2, 7)  # the whole entity


def test_link_target_and_label_are_both_scanned():
    text = f"mail <mailto:{EMAIL}|{EMAIL}> or <https://example.com/?token=abc&amp;u=1|the dashboard>"
    scan = build_scan_text(text)
    assert scan.text.count(EMAIL) == 2
    assert "https://example.com/?token=abc&u=1" in scan.text and "the dashboard" in scan.text
    assert len(scan.links) == 2


def test_zero_width_and_rtl_marks_do_not_split_values():
    text = "card 4111\u200b1111\u200b1111\u200b1111 \u202eok\u202c"
    scan = build_scan_text(text)
    assert "4111111111111111" in scan.text
    start = scan.text.index("4111111111111111")
    assert scan.to_original(start, start + 16) == (5, 24)


def test_unicode_digits_and_spaces_are_folded_one_for_one():
    text = "ssn\u00a0０７８-０５-１１２３"
    scan = build_scan_text(text)
    assert scan.text == "ssn 078-05-1123" and len(scan.text) == len(text)


def test_code_spans_are_marked_for_ner_skipping():
    text = "Alice says run `export TOKEN=abc` and\n```\nBob Smith = 1\n```"
    scan = build_scan_text(text)
    ner = scan.ner_text()
    assert "Alice" in ner and "Bob Smith" not in ner and "TOKEN" not in ner
    assert "TOKEN=abc" in scan.text  # still scanned by the rules


# --- through the scanner ------------------------------------------------------------------------------------


def test_secrets_inside_code_blocks_are_found(scanner):
    outcome = scanner.scan(f"here is my env:\n```\nSLACK_BOT_TOKEN={SLACK_BOT}\n```\nand inline `{SLACK_BOT}`")
    assert [f.entity_type for f in outcome.findings].count("SLACK_TOKEN") == 2
    assert SLACK_BOT not in outcome.redacted
    assert outcome.redacted.count("```") == 2 and outcome.redacted.count("`") == 8


def test_mentions_are_never_findings_or_broken(scanner):
    text = f"<@U024BE7LH> <#C024BE7LR|payments> card {CARD} :credit_card: <!channel>"
    outcome = scanner.scan(text)
    assert {f.entity_type for f in outcome.findings} == {"CREDIT_CARD"}
    for token in ("<@U024BE7LH>", "<#C024BE7LR|payments>", ":credit_card:", "<!channel>"):
        assert token in outcome.redacted


def test_mailto_link_redacted_consistently_and_stays_valid_mrkdwn(scanner):
    policy_redacts_email = scanner.policy.base.categories.get("contact") in ("redact", "block")
    text = f"write to <mailto:{EMAIL}|{EMAIL}> today, SSN {SSN}"
    outcome = scanner.scan(text)
    emails = [f for f in outcome.findings if f.entity_type == "EMAIL_ADDRESS"]
    assert len(emails) == 2  # target and label
    if not policy_redacts_email:
        assert f"<mailto:{EMAIL}|{EMAIL}>" in outcome.redacted
    assert SSN not in outcome.redacted and outcome.redacted.count("<") == outcome.redacted.count(">")


def test_link_with_secret_target_becomes_plain_text(scanner):
    hook = "https://hooks.slack.com/services/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"
    outcome = scanner.scan(f"post to <{hook}|our alerts hook> please")
    assert outcome.verdict == "block"
    assert "hooks.slack.com" not in outcome.redacted and "T024BE7LD" not in outcome.redacted
    assert outcome.redacted == "post to our alerts hook ([SLACK_WEBHOOK_URL]) please"


def test_offsets_index_the_original_text(scanner):
    text = f"&lt;b&gt; <@U1> zero\u200bwidth then {EMAIL} and {CARD}"
    outcome = scanner.scan(text)
    spans = {f.entity_type: text[f.start:f.end] for f in outcome.findings}
    assert spans["EMAIL_ADDRESS"] == EMAIL and spans["CREDIT_CARD"] == CARD


def test_payload_blocks_attachments_and_text_are_all_redacted(scanner):
    payload = json.loads((PAYLOADS[0].parent / "chat_post_blocks.json").read_text())
    payload["text"] += f" ssn {SSN}"
    payload["blocks"][1]["fields"][1]["text"] = f"Card: {CARD}"
    payload["attachments"][0]["fields"][0]["value"] = f"SSN {SSN}"
    payload["blocks"][4]["elements"][0]["elements"][2]["text"] = f" card {CARD} "
    outcome = scanner.scan(payload, channel_id="C0123456789")
    dumped = json.dumps(outcome.redacted)
    assert SSN not in dumped and CARD not in dumped and "4111" not in dumped.replace("1111", "")
    # everything else is unchanged
    assert outcome.redacted["blocks"][0] == payload["blocks"][0]
    assert outcome.redacted["attachments"][0]["color"] == "#36a64f"
