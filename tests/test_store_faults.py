"""The proxy and the Slack app while PostgreSQL goes away and comes back: fail closed, lose nothing, recover.

The database is a cluster of the test's own, stopped and started under the running app.
"""

from __future__ import annotations

import asyncio

from slack_pii.slackapp import blocks
from tests.bolt_support import block_action, buttons, command_body, start_harness, stop_harness
from tests.factories import CARD, SSN
from tests.support.postgres import create_database

ORIGINAL = f"refund card {CARD} for jane, SSN {SSN}"
DEADLINE = 20.0


async def _ready(h) -> tuple[int, dict]:
    response = await h.session.get(h.server.make_url("/readyz"))
    return response.status, await response.json()


async def test_a_database_outage_fails_closed_and_loses_no_held_message(tmp_path, scanner, pg_cluster, caplog):
    url = create_database(pg_cluster.url())
    h = await start_harness(tmp_path, scanner, database_url=url, database_timeout_seconds=2)
    try:
        await h.send(command_body(ORIGINAL, response_url=h.response_url),
                     content_type="application/x-www-form-urlencoded")
        held = buttons(h.calls("chat.postEphemeral")[-1])[blocks.SEND_REDACTED]
        assert (await _ready(h))[0] == 200

        pg_cluster.stop()
        status, body = await _ready(h)
        assert status == 503 and body["checks"]["store"] is False
        refused = await h.send(command_body(f"card {CARD} again", response_url=h.response_url),
                               content_type="application/x-www-form-urlencoded")
        answer = await refused.json()
        assert refused.status == 503 and answer["ok"] is False and answer["error"] == "pii_store_unavailable"
        assert CARD not in str(answer) and "postgres" not in str(answer)
        assert len(h.calls("chat.postEphemeral")) == 1 and h.calls("chat.postMessage") == []
        click = await h.interact(block_action(blocks.SEND_REDACTED, held, response_url=h.response_url))
        assert click.status == 503 and h.calls("chat.postMessage") == []  # the click is refused, not consumed

        pg_cluster.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while (await _ready(h))[0] != 200:
            assert loop.time() < deadline, "readyz did not recover after the database came back"
            await asyncio.sleep(0.1)
        await h.interact(block_action(blocks.SEND_REDACTED, held, response_url=h.response_url))
        [post] = h.calls("chat.postMessage")
        assert post["text"].startswith("refund card ") and CARD not in post["text"]
        for record in caplog.records:
            assert CARD not in record.getMessage() and url not in record.getMessage()
    finally:
        if not pg_cluster.is_running():
            pg_cluster.start()
        await stop_harness(h)


async def test_the_web_api_never_forwards_unscanned_text_during_an_outage(tmp_path, scanner, pg_cluster):
    """Scanning needs no database: a message is still redacted before it goes upstream; only its audit row is
    lost (and logged as lost)."""
    url = create_database(pg_cluster.url())
    h = await start_harness(tmp_path, scanner, database_url=url, database_timeout_seconds=2)
    try:
        pg_cluster.stop()
        response = await h.session.post(h.server.make_url("/api/chat.postMessage"),
                                        json={"channel": "C1", "text": f"card {CARD}"},
                                        headers={"Authorization": "Bearer xoxb-1-2-abc"})
        assert response.status == 200 and (await response.json())["ok"] is True
        [sent] = h.calls("chat.postMessage")
        assert CARD not in sent["text"]
    finally:
        pg_cluster.start()
        await stop_harness(h)
