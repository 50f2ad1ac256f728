"""The Bolt app end to end over HTTP: signed Slack requests in, Web API calls out to a recording Slack double."""

from __future__ import annotations

import json
import time

import pytest

from slack_pii.slackapp import blocks
from tests.bolt_support import (BOT_USER, CHANNEL, OTHER, USER, assert_renders, block_action, buttons,
                                command_body, event_body, function_executed, interactive_body, message_event,
                                shortcut, signed_headers, start_harness, stop_harness, view_submission)
from tests.factories import CARD, EMAIL, SLACK_BOT, SSN

CARD_LAST4 = CARD.replace(" ", "")[-4:]


@pytest.fixture
async def h(tmp_path, scanner):
    harness = await start_harness(tmp_path, scanner)
    yield harness
    await stop_harness(harness)


def _one(h, method: str) -> dict:
    calls = h.calls(method)
    assert len(calls) == 1, f"{method}: {len(calls)} calls"
    return calls[0]


# --- passive scanning ---------------------------------------------------------------------------------------------


async def test_message_with_pii_warns_the_sender_privately_with_three_choices(h):
    response = await h.event(message_event(f"customer SSN is {SSN}"))
    assert response.status == 200
    warning = _one(h, "chat.postEphemeral")
    assert warning["user"] == USER and warning["channel"] == CHANNEL
    assert set(buttons(warning)) == {blocks.REDACT_MINE, blocks.DELETE_MINE, blocks.NOT_SENSITIVE}
    assert "US_SSN" in warning["text"]
    assert SSN not in json.dumps(warning)  # the warning names the kind, never the value
    assert_renders(warning)
    assert h.calls("chat.postMessage") == []


async def test_edited_message_is_scanned_and_unchanged_edits_are_not(h):
    changed = {"type": "message", "subtype": "message_changed", "channel": CHANNEL, "hidden": True,
               "ts": "1700000300.000002",
               "message": {"type": "message", "user": USER, "text": f"card {CARD}", "ts": "1700000300.000001"},
               "previous_message": {"type": "message", "user": USER, "text": "card soon", "ts": "1700000300.000001"}}
    await h.event(changed)
    unfurled = {**changed, "previous_message": changed["message"]}  # an unfurl or our own redaction: same text
    await h.event(unfurled)
    assert len(h.calls("chat.postEphemeral")) == 1


async def test_thread_reply_and_file_comment_are_scanned(h):
    await h.event(message_event(f"reply with {SSN}", thread_ts="1700000000.000009"))
    await h.event(message_event(f"see attached, mine is {CARD}", subtype="file_share",
                                files=[{"id": "F1", "title": "report.pdf"}]))
    warnings = h.calls("chat.postEphemeral")
    assert len(warnings) == 2
    assert warnings[0]["thread_ts"] == "1700000000.000009"


async def test_bot_messages_own_messages_and_system_subtypes_are_ignored(h):
    await h.event(message_event(f"bot says {SSN}", bot_id="B0OTHER"))
    await h.event(message_event(f"bot says {SSN}", subtype="bot_message"))
    await h.event(message_event(f"our own post {SSN}", user=BOT_USER))
    await h.event(message_event(f"joined {SSN}", subtype="channel_join"))
    assert h.calls("chat.postEphemeral") == [] and h.calls("chat.postMessage") == []


async def test_retried_event_is_acked_but_not_acted_on_twice(h):
    body = event_body(message_event(f"SSN {SSN}"), event_id="Ev0RETRIED")
    first = await h.send(body)
    later = int(time.time()) + 1  # Slack signs each delivery anew
    retry = await h.send(body, headers={**signed_headers(body, timestamp=later), "X-Slack-Retry-Num": "1",
                                        "X-Slack-Retry-Reason": "http_timeout"})
    assert first.status == retry.status == 200
    assert len(h.calls("chat.postEphemeral")) == 1


async def test_clean_message_is_left_alone(h):
    await h.event(message_event("lunch at noon?"))
    assert h.calls("chat.postEphemeral") == []


async def test_ephemeral_refused_falls_back_to_a_dm(h):
    h.double.answer("chat.postEphemeral", json_body={"ok": False, "error": "user_not_in_channel"})
    await h.event(message_event(f"SSN {SSN}"))
    dm = _one(h, "chat.postMessage")
    assert dm["channel"] == USER and set(buttons(dm)) == {blocks.REDACT_MINE, blocks.DELETE_MINE,
                                                           blocks.NOT_SENSITIVE}


async def _warned(h, text: str) -> str:
    await h.event(message_event(text, ts="1700000400.000001"))
    return buttons(h.calls("chat.postEphemeral")[-1])[blocks.REDACT_MINE]


async def test_redact_my_message_edits_it_with_the_senders_own_token(h):
    await h.store.save_user_token(USER, "xoxp-sender-own-token")
    held = await _warned(h, f"my card {CARD} thanks")
    await h.interact(block_action(blocks.REDACT_MINE, held, response_url=h.response_url))
    update = _one(h, "chat.update")
    assert h.tokens("chat.update") == ["Bearer xoxp-sender-own-token"]
    assert update["ts"] == "1700000400.000001" and update["channel"] == CHANNEL
    assert CARD not in update["text"] and CARD_LAST4 in update["text"] and update["text"].startswith("my card ")
    assert await h.store.peek(held) is None  # done: the held original is erased
    assert "redacted" in h.calls("webhook")[-1]["text"]


async def test_redact_my_message_without_a_user_token_says_what_it_cannot_do(h):
    held = await _warned(h, f"my card {CARD}")
    assert "authorised" in json.dumps(h.calls("chat.postEphemeral")[-1])
    await h.interact(block_action(blocks.REDACT_MINE, held, response_url=h.response_url))
    assert h.calls("chat.update") == []
    answer = h.calls("webhook")[-1]
    assert answer["replace_original"] is True and "can't edit your message" in answer["text"]
    assert await h.store.peek(held) is not None  # they can still delete it or report it


async def test_delete_it_deletes_with_the_user_token(h):
    await h.store.save_user_token(USER, "xoxp-sender-own-token")
    held = await _warned(h, f"SSN {SSN}")
    await h.interact(block_action(blocks.DELETE_MINE, held, response_url=h.response_url))
    delete = _one(h, "chat.delete")
    assert delete["ts"] == "1700000400.000001" and h.tokens("chat.delete") == ["Bearer xoxp-sender-own-token"]


async def test_not_sensitive_records_a_fingerprinted_report(h):
    held = await _warned(h, f"SSN {SSN}")
    await h.interact(block_action(blocks.NOT_SENSITIVE, held, response_url=h.response_url))
    rows = await h.store.feedback()
    assert len(rows) == 1
    row = rows[0]
    assert row["entity_type"] == "US_SSN" and row["reporter"] == USER and row["rule_id"]
    assert SSN not in json.dumps(rows) and len(row["fingerprint"]) == 24
    assert await h.store.peek(held) is None


async def test_someone_else_cannot_use_the_senders_buttons(h):
    await h.store.save_user_token(OTHER, "xoxp-other-token")
    held = await _warned(h, f"SSN {SSN}")
    await h.interact(block_action(blocks.DELETE_MINE, held, response_url=h.response_url, user=OTHER))
    assert h.calls("chat.delete") == []
    assert await h.store.peek(held) is not None


# --- /safe --------------------------------------------------------------------------------------------------------


async def _safe(h, text: str) -> dict:
    response = await h.send(command_body(text, response_url=h.response_url),
                            content_type="application/x-www-form-urlencoded")
    assert response.status == 200
    return h.calls("chat.postEphemeral")[-1] if h.calls("chat.postEphemeral") else {}


async def test_safe_clean_text_is_posted_at_once(h):
    await _safe(h, "deploy is done")
    post = _one(h, "chat.postMessage")
    assert post["text"] == "deploy is done" and post["channel"] == CHANNEL
    assert_renders(post)
    assert h.calls("chat.postEphemeral") == []


async def test_safe_with_findings_previews_the_redacted_text_with_four_buttons(h):
    preview = await _safe(h, f"refund card {CARD} for jane")
    assert h.calls("chat.postMessage") == []
    assert set(buttons(preview)) == {blocks.SEND_REDACTED, blocks.EDIT, blocks.SEND_ORIGINAL, blocks.CANCEL}
    rendered = json.dumps(preview)
    assert CARD not in rendered and CARD_LAST4 in rendered
    assert_renders(preview)
    held_ids = set(buttons(preview).values())
    assert len(held_ids) == 1 and "refund" not in held_ids.pop()  # buttons carry the held id only


async def test_safe_with_a_credential_does_not_offer_send_original(h):
    preview = await _safe(h, f"use {SLACK_BOT} for the deploy")
    assert set(buttons(preview)) == {blocks.SEND_REDACTED, blocks.EDIT, blocks.CANCEL}
    assert SLACK_BOT not in json.dumps(preview)


async def test_send_redacted_posts_the_redacted_text_and_erases_the_original(h):
    held = buttons(await _safe(h, f"card {CARD} and mail {EMAIL}"))[blocks.SEND_REDACTED]
    await h.interact(block_action(blocks.SEND_REDACTED, held, response_url=h.response_url))
    post = _one(h, "chat.postMessage")
    assert CARD not in post["text"] and EMAIL not in post["text"]  # warn findings go too when asked to redact
    assert post["text"].startswith("card ") and post["channel"] == CHANNEL
    assert await h.store.peek(held) is None
    # a second click (or a replayed action) does nothing
    await h.interact(block_action(blocks.SEND_REDACTED, held, response_url=h.response_url))
    assert len(h.calls("chat.postMessage")) == 1


async def test_cancel_erases_the_original_and_posts_nothing(h):
    held = buttons(await _safe(h, f"SSN {SSN}"))[blocks.CANCEL]
    await h.interact(block_action(blocks.CANCEL, held, response_url=h.response_url))
    assert h.calls("chat.postMessage") == [] and await h.store.peek(held) is None
    assert "Cancelled" in h.calls("webhook")[-1]["text"]
    events = [e for e in await h.store.audit_events() if e["name"] == "sender_decided"]
    assert events[-1]["action"] == "cancel"


async def test_edit_opens_the_original_and_the_submission_is_scanned_again(h):
    original = f"SSN {SSN} for the form"
    held = buttons(await _safe(h, original))[blocks.EDIT]
    await h.interact(block_action(blocks.EDIT, held, response_url=h.response_url))
    opened = _one(h, "views.open")
    view = opened["view"] if isinstance(opened["view"], dict) else json.loads(opened["view"])
    assert_renders(view, "modal")
    assert view["blocks"][1]["element"]["initial_value"] == original
    # still sensitive: a new preview, the old original erased
    values = {blocks.MESSAGE_BLOCK: {blocks.MESSAGE_INPUT: {"type": "plain_text_input",
                                                            "value": f"card {CARD} instead"}}}
    await h.interact(view_submission(blocks.EDIT_VIEW, values, private_metadata=view["private_metadata"]))
    assert await h.store.peek(held) is None
    second = h.calls("chat.postEphemeral")[-1]
    new_held = buttons(second)[blocks.SEND_REDACTED]
    assert new_held != held and CARD not in json.dumps(second)
    # fixed: posted at once
    values[blocks.MESSAGE_BLOCK][blocks.MESSAGE_INPUT]["value"] = "the form is filed"
    await h.interact(block_action(blocks.EDIT, new_held, response_url=h.response_url))
    view = json.loads(h.calls("views.open")[-1]["view"]) if isinstance(h.calls("views.open")[-1]["view"], str) \
        else h.calls("views.open")[-1]["view"]
    await h.interact(view_submission(blocks.EDIT_VIEW, values, private_metadata=view["private_metadata"]))
    assert _one(h, "chat.postMessage")["text"] == "the form is filed"


async def test_send_original_with_a_reason_posts_it_and_audits_the_reason(h):
    original = f"confirming card {CARD} as requested"
    held = buttons(await _safe(h, original))[blocks.SEND_ORIGINAL]
    await h.interact(block_action(blocks.SEND_ORIGINAL, held, response_url=h.response_url))
    view = h.calls("views.open")[-1]["view"]
    view = view if isinstance(view, dict) else json.loads(view)
    assert view["callback_id"] == blocks.REASON_VIEW
    assert_renders(view, "modal")
    reason = f"customer asked, call back on {SSN}"  # a reason that itself holds PII is stored redacted
    values = {blocks.REASON_BLOCK: {blocks.REASON_INPUT: {"type": "plain_text_input", "value": reason}}}
    await h.interact(view_submission(blocks.REASON_VIEW, values, private_metadata=view["private_metadata"]))
    assert _one(h, "chat.postMessage")["text"] == original
    decided = [e for e in await h.store.audit_events() if e["name"] == "sender_decided"][-1]
    assert decided["action"] == "send_original"
    assert decided["detail"]["reason"].startswith("customer asked") and SSN not in decided["detail"]["reason"]
    assert await h.store.peek(held) is None


async def test_empty_reason_is_refused_in_the_modal(h):
    held = buttons(await _safe(h, f"card {CARD}"))[blocks.SEND_ORIGINAL]
    values = {blocks.REASON_BLOCK: {blocks.REASON_INPUT: {"type": "plain_text_input", "value": "  "}}}
    response = await h.interact(view_submission(blocks.REASON_VIEW, values,
                                                private_metadata=json.dumps({"id": held})))
    assert (await response.json())["response_action"] == "errors"
    assert h.calls("chat.postMessage") == []


# --- shortcuts ----------------------------------------------------------------------------------------------------


async def test_global_shortcut_opens_the_composer_and_its_submission_is_scanned(h):
    await h.interact(shortcut("shortcut"))
    view = _one(h, "views.open")["view"]
    view = view if isinstance(view, dict) else json.loads(view)
    assert view["callback_id"] == blocks.COMPOSE_VIEW
    assert_renders(view, "modal")
    values = {blocks.MESSAGE_BLOCK: {blocks.MESSAGE_INPUT: {"type": "plain_text_input", "value": f"SSN {SSN}"}},
              blocks.CHANNEL_BLOCK: {blocks.CHANNEL_INPUT: {"type": "conversations_select",
                                                            "selected_conversation": CHANNEL}}}
    await h.interact(view_submission(blocks.COMPOSE_VIEW, values))
    preview = _one(h, "chat.postEphemeral")
    assert preview["channel"] == CHANNEL and blocks.SEND_REDACTED in buttons(preview)


async def test_message_shortcut_prefills_the_composer(h):
    await h.interact(shortcut("message_action", channel={"id": CHANNEL}, response_url=h.response_url,
                              message={"type": "message", "user": OTHER, "ts": "1.2", "text": "ship it"},
                              message_ts="1.2"))
    view = _one(h, "views.open")["view"]
    view = view if isinstance(view, dict) else json.loads(view)
    assert view["blocks"][0]["element"]["initial_value"] == "ship it"
    assert view["blocks"][1]["element"]["initial_conversation"] == CHANNEL


# --- the workflow step ------------------------------------------------------------------------------------------


async def test_send_safely_posts_the_redacted_version_and_completes_with_outputs(h):
    h.double.answer("chat.getPermalink", json_body={"ok": True, "permalink": "https://x.slack.com/archives/C/p1"})
    await h.event(function_executed({"message": f"refund {CARD}", "channel_id": CHANNEL, "user_id": USER,
                                     "thread_ts": "1700000000.000050"}))
    post = _one(h, "chat.postMessage")
    assert CARD not in post["text"] and CARD_LAST4 in post["text"]
    assert post["thread_ts"] == "1700000000.000050"
    assert h.tokens("chat.postMessage") == ["Bearer xwfp-function-token"]
    done = _one(h, "functions.completeSuccess")
    outputs = done["outputs"] if isinstance(done["outputs"], dict) else json.loads(done["outputs"])
    assert outputs["verdict"] == "redact" and outputs["entity_types"] == "CREDIT_CARD"
    assert outputs["message_link"] == "https://x.slack.com/archives/C/p1" and outputs["message_ts"]


async def test_send_safely_blocks_a_credential_fails_the_step_and_dms_the_sender(h):
    await h.event(function_executed({"message": f"token {SLACK_BOT}", "channel_id": CHANNEL, "user_id": USER}))
    assert h.calls("functions.completeSuccess") == []
    error = _one(h, "functions.completeError")["error"]
    assert "SLACK_TOKEN" in error and "slack-bot-token" in error and SLACK_BOT not in error
    dm = _one(h, "chat.postMessage")
    assert dm["channel"] == USER and SLACK_BOT not in json.dumps(dm) and "not posted" in dm["text"]
    assert_renders(dm)


# --- request checks -----------------------------------------------------------------------------------------------


async def test_unsigned_badly_signed_stale_and_replayed_requests_are_refused(h):
    body = event_body(message_event(f"SSN {SSN}"))
    unsigned = await h.send(body, headers={"Content-Type": "application/json"})
    wrong = await h.send(body, headers=signed_headers(body, secret="not-the-secret"))
    stale = await h.send(body, headers=signed_headers(body, timestamp=int(time.time()) - 6 * 60))
    assert unsigned.status == wrong.status == stale.status == 401
    headers = signed_headers(body)
    first = await h.send(body, headers=headers)
    replayed = await h.send(body, headers=headers)
    assert first.status == 200 and replayed.status == 401
    assert len(h.calls("chat.postEphemeral")) == 1


async def test_malformed_payloads_get_400(h):
    for body, kind in (("{not json", "application/json"), ("[1, 2]", "application/json"),
                       (interactive_body({"no": "type"}).replace("%7B", "%5B", 1), "application/x-www-form-urlencoded"),
                       ("hello=world", "application/x-www-form-urlencoded")):
        response = await h.send(body, content_type=kind)
        assert response.status == 400, body
        assert (await response.json())["error"] == "invalid_payload"


async def test_nothing_sensitive_reaches_logs_or_the_audit_trail(h, caplog):
    caplog.set_level("DEBUG")
    await h.event(message_event(f"SSN {SSN} card {CARD}"))
    held = buttons(await _safe(h, f"mail {EMAIL} and {SSN}"))[blocks.SEND_REDACTED]
    await h.interact(block_action(blocks.SEND_REDACTED, held, response_url=h.response_url))
    await h.event(function_executed({"message": f"token {SLACK_BOT}", "channel_id": CHANNEL, "user_id": USER}))
    await h.send("{broken " + SSN, content_type="application/json")
    audit = json.dumps(await h.store.audit_events())
    for value in (SSN, CARD, EMAIL, SLACK_BOT):
        assert value not in caplog.text and value not in audit
    metrics = await (await h.session.get(h.server.make_url("/metrics"))).text()
    assert SSN not in metrics


async def test_repost_policy_deletes_with_the_admin_token_and_reposts_redacted(tmp_path, scanner):
    h = await start_harness(tmp_path, scanner, passive_action="repost", slack_user_token="xoxp-admin-token")
    try:
        await h.event(message_event(f"card {CARD} please", ts="1700000500.000001"))
        assert _one(h, "chat.delete")["ts"] == "1700000500.000001"
        assert h.tokens("chat.delete") == ["Bearer xoxp-admin-token"]
        repost = _one(h, "chat.postMessage")
        assert CARD not in repost["text"] and repost["text"].startswith("card ")
        assert f"<@{USER}>" in json.dumps(repost["blocks"])  # attributed to the sender
        assert "reposted" in _one(h, "chat.postEphemeral")["text"]
        # a contact detail (warn) is not reposted: the sender is warned instead
        await h.event(message_event(f"mail {EMAIL}"))
        assert len(h.calls("chat.delete")) == 1
        assert blocks.REDACT_MINE in buttons(h.calls("chat.postEphemeral")[-1])
    finally:
        await stop_harness(h)
