"""Held originals: encrypted on disk, kept across a restart, gone after the sender decides or the TTL passes."""

from __future__ import annotations

import pytest

from slack_pii.slackapp import blocks
from tests.bolt_support import buttons, block_action, command_body, start_harness, stop_harness
from tests.factories import CARD, SSN, Clock

ORIGINAL = f"refund card {CARD} for jane, SSN {SSN}"



async def _hold(h) -> str:
    await h.send(command_body(ORIGINAL, response_url=h.response_url),
                 content_type="application/x-www-form-urlencoded")
    return buttons(h.calls("chat.postEphemeral")[-1])[blocks.SEND_REDACTED]


def _raw_bytes(tmp_path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("slack-pii.sqlite3*")))


async def test_held_original_is_not_in_the_database_files_in_clear(tmp_path, scanner):
    h = await start_harness(tmp_path, scanner)
    try:
        held = await _hold(h)
        assert (await h.store.peek(held)).text == ORIGINAL
        raw = _raw_bytes(tmp_path)  # the main file and the -wal, while the app runs
        assert (tmp_path / "slack-pii.sqlite3-wal").exists()
        for needle in (ORIGINAL, CARD, CARD.replace(" ", ""), SSN, "refund card"):
            assert needle.encode() not in raw
            assert needle.encode("utf-16-le") not in raw
    finally:
        await stop_harness(h)
    raw = _raw_bytes(tmp_path)  # and after shutdown's checkpoint
    assert CARD.encode() not in raw and SSN.encode() not in raw


async def test_a_restart_loses_no_held_message(tmp_path, scanner):
    first = await start_harness(tmp_path, scanner)
    try:
        held = await _hold(first)
    finally:
        await stop_harness(first)
    second = await start_harness(tmp_path, scanner)
    try:
        await second.interact(block_action(blocks.SEND_REDACTED, held, response_url=second.response_url))
        post = second.calls("chat.postMessage")
        assert len(post) == 1 and post[0]["text"].startswith("refund card ") and CARD not in post[0]["text"]
    finally:
        await stop_harness(second)


async def test_an_expired_original_is_refused_and_purged(tmp_path, scanner):
    clock = Clock()
    h = await start_harness(tmp_path, scanner, clock=clock, hold_ttl_seconds=900)
    try:
        held = await _hold(h)
        clock.now += 901
        await h.interact(block_action(blocks.SEND_REDACTED, held, response_url=h.response_url))
        assert h.calls("chat.postMessage") == []
        assert "expired" in h.calls("webhook")[-1]["text"]
    finally:
        await stop_harness(h)
    # the row itself is erased by the start-up purge (and every minute while running)
    again = await start_harness(tmp_path, scanner, clock=clock)
    try:
        assert await again.store.purge_expired() == 0
        rows = await again.store._rows("SELECT count(*) AS n FROM held_messages")
        assert rows[0]["n"] == 0
    finally:
        await stop_harness(again)


@pytest.mark.parametrize("decision", [blocks.SEND_REDACTED, blocks.CANCEL])
async def test_deciding_erases_the_row(tmp_path, scanner, decision):
    h = await start_harness(tmp_path, scanner)
    try:
        held = await _hold(h)
        await h.interact(block_action(decision, held, response_url=h.response_url))
        rows = await h.store._rows("SELECT count(*) AS n FROM held_messages")
        assert rows[0]["n"] == 0
    finally:
        await stop_harness(h)
