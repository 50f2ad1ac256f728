"""The Bolt app and shared files: fetched from the Slack double with the bot token, scanned, sender warned."""

from __future__ import annotations

import json

import pytest

from slack_pii.keys import fingerprint
from slack_pii.slackapp import blocks
from slack_pii.slackapp.files import DELETE_FILE
from tests.bolt_support import (BOT_TOKEN, CHANNEL, USER, assert_renders, block_action, buttons, message_event,
                                start_harness, stop_harness)
from tests.conftest import TEST_KEY, TEST_KEYS
from tests.factories import SSN
from tests.file_factories import customers_csv

CLEAN = b"# Notes\n\nNothing sensitive in here.\n"


@pytest.fixture
async def h(tmp_path, scanner):
    harness = await start_harness(tmp_path, scanner)
    yield harness
    await stop_harness(harness)


def shared(h, file_id: str, name: str, data: bytes, **extra) -> dict:
    url = h.double.host_file(file_id, name, data)
    return {"id": file_id, "name": name, "size": len(data), "url_private": url, **extra}


async def file_events(h) -> list[dict]:
    return [e for e in await h.store.audit_events() if e["name"] == "file_scanned"]


async def test_file_share_fetches_with_the_bot_token_and_warns_with_buttons(h):
    data = customers_csv(4)
    await h.event(message_event("here is the export", subtype="file_share",
                                files=[shared(h, "F0CSV0001", "customers.csv", data)]))
    [download] = h.double.received("download")
    assert download.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    [warning] = h.calls("chat.postEphemeral")
    assert warning["user"] == USER and warning["channel"] == CHANNEL
    assert set(buttons(warning)) == {DELETE_FILE, blocks.NOT_SENSITIVE}
    assert "US_SSN" in warning["text"] and SSN not in json.dumps(warning)
    assert_renders(warning)
    [event] = await file_events(h)
    assert event["source"] == "bolt" and event["method"] == "file_share" and event["action"] == "redact"
    assert event["detail"]["file_id"] == "F0CSV0001" and event["detail"]["size"] == len(data)
    assert event["entities"]["US_SSN"] == 4 and SSN not in json.dumps(event)


async def test_not_sensitive_on_a_file_reports_keyed_fingerprints(h):
    await h.event(message_event("", subtype="file_share", files=[shared(h, "F0CSV0002", "c.csv", customers_csv(2))]))
    held = buttons(h.calls("chat.postEphemeral")[0])[blocks.NOT_SENSITIVE]
    await h.interact(block_action(blocks.NOT_SENSITIVE, held, response_url=h.response_url))
    rows = await h.store.feedback()
    ssn_rows = [r for r in rows if r["entity_type"] == "US_SSN"]
    assert [r["fingerprint"] for r in ssn_rows] == [fingerprint(SSN, TEST_KEYS.fingerprints)]
    assert SSN not in json.dumps(rows)


async def test_delete_the_file_uses_the_senders_token(h):
    await h.store.save_user_token(USER, "xoxp-sender-own-token")
    await h.event(message_event("", subtype="file_share", files=[shared(h, "F0CSV0003", "c.csv", customers_csv(1))]))
    held = buttons(h.calls("chat.postEphemeral")[0])[DELETE_FILE]
    await h.interact(block_action(DELETE_FILE, held, response_url=h.response_url))
    [delete] = h.calls("files.delete")
    assert delete["file"] == "F0CSV0003" and h.tokens("files.delete") == ["Bearer xoxp-sender-own-token"]


async def test_clean_files_oversize_files_and_repeats_get_no_warning(h):
    await h.event(message_event("", subtype="file_share", files=[shared(h, "F0CLEAN01", "notes.md", CLEAN)]))
    big = shared(h, "F0BIG0001", "big.csv", customers_csv(1), size=h.bolt.settings.file_max_bytes + 1)
    await h.event(message_event("", subtype="file_share", files=[big]))
    assert len(h.double.received("download")) == 1  # the oversize one is never fetched
    again = {"type": "file_shared", "file_id": "F0CLEAN01", "user_id": USER, "channel_id": CHANNEL,
             "file": {"id": "F0CLEAN01"}}
    await h.event(again)
    assert h.double.received("files.info") == [] and len(h.double.received("download")) == 1
    assert h.calls("chat.postEphemeral") == []
    assert [e["detail"]["error"] for e in await file_events(h)] == ["", "file_too_large"]


async def test_file_shared_event_reads_the_file_object_with_files_info(h):
    url = h.double.host_file("F0CSV0004", "c.csv", customers_csv(1))
    h.double.answer("files.info", json_body={"ok": True, "file": {"id": "F0CSV0004", "name": "c.csv", "size": 200,
                                                                   "url_private": url}})
    await h.event({"type": "file_shared", "file_id": "F0CSV0004", "user_id": USER, "channel_id": CHANNEL,
                   "file": {"id": "F0CSV0004"}, "event_ts": "1700000500.000001"})
    assert len(h.double.received("files.info")) == 1 and len(h.double.received("download")) == 1
    assert len(h.calls("chat.postEphemeral")) == 1
