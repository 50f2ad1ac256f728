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
        metrics = await h.session.get(h.server.make_url("/metrics"))
        assert metrics.status == 200 and "slack_pii" in await metrics.text()  # still scraped during the outage
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


async def test_connections_dropped_mid_load_fail_closed_and_the_pool_recovers(tmp_path, scanner, pg_url):
    """While commands and Web API posts stream in, the database kills every connection of the app, three times.
    Each answer is a success or a Slack-shaped pii_store_unavailable (never a 500), nothing unscanned reaches
    Slack, every preview the sender got still has its held original, and the app is ready again after."""
    import psycopg

    h = await start_harness(tmp_path, scanner, database_url=pg_url, database_timeout_seconds=2)
    kill = ("SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()")

    async def command(n: int):
        body = command_body(f"card {CARD} case {n}", response_url=h.response_url)
        return await h.send(body, content_type="application/x-www-form-urlencoded", settle=False)

    async def post(n: int):
        return await h.session.post(h.server.make_url("/api/chat.postMessage"),
                                    json={"channel": "C1", "text": f"card {CARD} case {n}"},
                                    headers={"Authorization": "Bearer xoxb-1-2-abc"})

    async def killer():
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            for _ in range(3):
                await asyncio.sleep(0)  # let requests start between the kills
                await conn.execute(kill)
                await asyncio.sleep(0.05)

    try:
        results = await asyncio.gather(*(command(n) for n in range(20)), *(post(n) for n in range(20)), killer())
        responses = results[:-1]
        for response in responses:
            if response.status != 200:
                assert response.status == 503
                assert (await response.json())["error"] == "pii_store_unavailable"
        await h.bolt.drain()
        for call in h.calls("chat.postMessage"):
            assert CARD not in call["text"]
        previews = [buttons(c)[blocks.SEND_REDACTED] for c in h.calls("chat.postEphemeral")
                    if blocks.SEND_REDACTED in buttons(c)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while (await _ready(h))[0] != 200:
            assert loop.time() < deadline, "readyz did not recover after the connections were dropped"
            await asyncio.sleep(0.1)
        for held in previews:
            assert await h.store.peek(held) is not None  # a preview the sender got has its original
        before = len(h.calls("chat.postEphemeral"))
        assert (await command(99)).status == 200
        await h.bolt.drain()
        assert len(h.calls("chat.postEphemeral")) == before + 1  # and new work goes through again
    finally:
        await stop_harness(h)


async def test_a_store_failure_inside_bolt_is_a_slack_shaped_503(tmp_path, scanner):
    """The event de-dup runs inside Bolt (after the signature check): its failure gets the same answer."""
    from slack_pii.store.base import StoreUnavailable
    from tests.bolt_support import event_body, message_event

    h = await start_harness(tmp_path, scanner)
    try:
        async def unavailable(key: str) -> bool:
            if key.startswith("event:"):
                raise StoreUnavailable("the store's database is unreachable (OperationalError)")
            return True

        h.store.mark_processed = unavailable
        response = await h.send(event_body(message_event(f"my card {CARD}")))
        assert response.status == 503 and (await response.json())["error"] == "pii_store_unavailable"
        assert h.calls("chat.postEphemeral") == []
    finally:
        await stop_harness(h)


async def test_the_purge_loop_outlives_a_database_outage(tmp_path, scanner, monkeypatch):
    """A purge round that finds the database away is skipped, not the end of purging."""
    from slack_pii.slackapp import service
    from slack_pii.store.base import StoreUnavailable

    monkeypatch.setattr(service, "PURGE_EVERY_SECONDS", 0.01)
    h = await start_harness(tmp_path, scanner)
    try:
        rounds = []
        purge = h.store.purge_expired

        async def flaky_purge(now=None):
            rounds.append(1)
            if len(rounds) == 1:
                raise StoreUnavailable("the store's database is unreachable (OperationalError)")
            return await purge(now)

        h.store.purge_expired = flaky_purge
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while len(rounds) < 3:
            assert loop.time() < deadline, f"purging stopped after {len(rounds)} round(s)"
            await asyncio.sleep(0.02)
    finally:
        await stop_harness(h)
