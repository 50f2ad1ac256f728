"""Slack payload walking and mrkdwn handling: what a user would notice if we got Slack's formats wrong."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from slack_pii.detect.slack_text import build_scan_text, decode_json_fields, encode_json_fields, extract_segments, reassemble
from tests.factories import CARD, EMAIL, SLACK_BOT, SSN, message, section

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
        assert path[-1] not in {"type", "action_id", "block_id", "user_id", "channel", "image_url", "color", "name"}


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


@pytest.mark.parametrize("text", [
    "ping <@U024BE7LH> now", "in <#C024BE7LR|general> please", "<!here> deploy", "<!subteam^S0614TZR7|@oncall> hi",
    ":white_check_mark: done :skin-tone-2:", "<!date^1392734382^{date_short}|Feb 18, 2014>",
])
def test_mentions_specials_and_emoji_are_hidden_from_recognizers(text):
    scan = build_scan_text(text)
    for hidden in ("U024BE7LH", "C024BE7LR", "general", "here", "S0614TZR7", "white_check_mark", "1392734382"):
        assert hidden not in scan.text


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
