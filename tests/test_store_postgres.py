"""The store shared by replicas: what must hold when several processes use one PostgreSQL database at once.

Each test opens two stores (two pools, as two replicas would) on one fresh database and races them with real
concurrency; the outcome, not the timing, is asserted.
"""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest

from slack_pii.cli import main
from slack_pii.store import StoreUnavailable, open_url
from slack_pii.store.audit import MessageScanned
from slack_pii.store.base import migrations
from slack_pii.store.postgres import PURGE_LOCK, PostgresStore, migrate
from tests.factories import Clock
from tests.test_proxy_store import KEY, SECRET_TEXT

DEADLINE = 10.0


@pytest.fixture
async def pair(pg_url):
    """Two replicas' stores on one database."""
    a, b = await open_url(pg_url, KEY), await open_url(pg_url, KEY)
    yield a, b
    await a.close()
    await b.close()


async def test_replicas_starting_together_migrate_once(pg_url):
    conns = [await psycopg.AsyncConnection.connect(pg_url, autocommit=True, row_factory=psycopg.rows.dict_row)
             for _ in range(6)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
        rows = await (await conns[0].execute("SELECT version FROM schema_version ORDER BY version")).fetchall()
    finally:
        for c in conns:
            await c.close()
    expected = [m.version for m in migrations("postgresql")]
    assert sorted(v for versions in applied for v in versions) == expected  # each version applied by one
    assert [r["version"] for r in rows] == expected


async def test_a_retry_arriving_at_two_replicas_counts_once(pair):
    a, b = pair
    results = await asyncio.gather(*(store.mark_processed("event:Ev0RETRY") for _ in range(25) for store in pair))
    assert results.count(True) == 1 and len(results) == 50


async def test_a_held_message_is_released_once_when_clicks_race(pair):
    a, b = pair
    held = await a.hold(SECRET_TEXT, user="U1", channel="C1")
    taken = await asyncio.gather(*(store.take_held(held) for _ in range(20) for store in pair))
    winners = [t for t in taken if t is not None]
    assert len(winners) == 1 and winners[0].text == SECRET_TEXT
    assert await a.peek(held) is None and await b.count_held() == 0


async def test_expired_messages_are_purged_by_one_replica_at_a_time(pg_url):
    clock = Clock()
    a, b = await open_url(pg_url, KEY, clock=clock), await open_url(pg_url, KEY, clock=clock)
    try:
        for _ in range(5):
            await a.hold("short", ttl_seconds=10)
        clock.now += 11
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as other:
            await other.execute("SELECT pg_advisory_lock(%s)", (PURGE_LOCK,))  # another replica is purging
            assert await b.purge_expired() == 0
            assert (await b._rows("SELECT count(*) AS n FROM held_messages"))[0]["n"] == 5
            await other.execute("SELECT pg_advisory_unlock(%s)", (PURGE_LOCK,))
        counts = await asyncio.gather(a.purge_expired(), b.purge_expired(), a.purge_expired())
        assert sum(counts) == 5
        assert (await b._rows("SELECT count(*) AS n FROM held_messages"))[0]["n"] == 0
    finally:
        await a.close()
        await b.close()


async def test_an_allow_list_change_is_pushed_to_the_other_replica(pair):
    a, b = pair
    changed = asyncio.Event()

    async def on_change():
        if "fp-pushed" in await b.allowed_fingerprints():
            changed.set()

    await b.listen_allow_list(on_change)
    assert await a.allow_fingerprint("fp-pushed", rule_id="email-address") is True
    await asyncio.wait_for(changed.wait(), DEADLINE)


async def test_dashboard_aggregates_agree_with_sqlite(tmp_path, pg_url):
    """The dashboard's JSON queries are the one place the dialects differ: the same events give the same numbers."""
    clock = Clock()
    stores = [await open_url(f"sqlite:///{tmp_path}/d.sqlite3", KEY, clock=clock), await open_url(pg_url, KEY,
                                                                                                  clock=clock)]
    findings = [{"entity_type": "CREDIT_CARD", "rule": "credit-card", "action": "redact", "reason": "policy"},
                {"entity_type": "EMAIL_ADDRESS", "rule": "email-address", "action": "allow", "reason": "allow-list"},
                {"entity_type": "US_SSN", "rule": "us-ssn", "action": "block", "reason": "policy"}]
    suppressed = [{"entity_type": "EMAIL_ADDRESS", "rule": "email-address", "reason": "placeholder"}]
    try:
        for store in stores:
            for n in range(6):
                clock.now = 1_700_000_000 + n * 400
                await store.record(MessageScanned(source="webapi", method="chat.postMessage", channel="C1",
                                                  caller="fp", action=("redact", "block", "allow")[n % 3],
                                                  entities={"CREDIT_CARD": 1, "US_SSN": n % 2},
                                                  rules=["credit-card", "us-ssn"], findings=findings[: n % 4],
                                                  suppressed=suppressed if n % 2 else []))
            # an event from before the explain trail: counted per message
            await store._write("INSERT INTO audit_events (created, name, action, entities, rules, detail)"
                               " VALUES (?, 'message_scanned', 'warn', '{\"PHONE_NUMBER\": 2}', '[\"phone\"]', '{}')",
                               (1_700_000_100.0,))
        since = 1_699_999_000

        def normal(rows, count):
            """Summed per key: SQLite may split one key over rows (it groups by a column before an alias)."""
            totals: dict[tuple, int] = {}
            for row in rows:
                key = tuple(sorted((k, v) for k, v in row.items() if k != count))
                totals[key] = totals.get(key, 0) + int(row[count])
            return totals

        sqlite, postgres = stores
        assert normal(await sqlite.activity(since, 900), "findings") == \
            normal(await postgres.activity(since, 900), "findings")
        assert normal(await sqlite.allow_hits(since), "hits") == normal(await postgres.allow_hits(since), "hits")
        assert await sqlite.top_rules(since) == await postgres.top_rules(since)
        assert await sqlite.action_counts(since) == await postgres.action_counts(since)
        assert len(await postgres.top_rules(since)) == 3 and await postgres.activity(since, 900)
        assert [r["action"] for r in await sqlite.recent_decisions()] == \
            [r["action"] for r in await postgres.recent_decisions()]
    finally:
        for store in stores:
            await store.close()


async def test_store_migrate_copies_everything_once(tmp_path, pg_url, monkeypatch, capsys):
    monkeypatch.setenv("SLACK_PII_SECRET_KEY", KEY.hex())
    monkeypatch.setenv("SLACK_PII_DATA_DIR", str(tmp_path))
    source = await open_url(f"sqlite:///{tmp_path}/old.sqlite3", KEY)
    held = await source.hold(SECRET_TEXT, user="U1", channel="C1", meta={"thread_ts": "1.2"})
    await source.allow_fingerprint("fp-allowed", rule_id="email-address", added_by="sec")
    await source.save_user_token("U1", "xoxp-user-token")
    await source.record_feedback("email-address", "EMAIL_ADDRESS", "fp-allowed", reporter="U2")
    for action in ("redact", "allow", "block"):
        await source.record(MessageScanned(source="webapi", method="chat.postMessage", channel=None, caller="fp",
                                           action=action))
    await source.close()
    target = await open_url(pg_url, KEY)
    await target.record(MessageScanned(source="bolt", method="message", channel="C9", caller="fp9", action="warn"))

    argv = ["store", "migrate", "--from", f"sqlite:///{tmp_path}/old.sqlite3", "--to", pg_url, "--json"]
    assert await asyncio.to_thread(main, argv) == 0  # the CLI runs its own event loop
    first = json.loads(capsys.readouterr().out)
    assert first == {"held_messages": [1, 1], "allow_fingerprints": [1, 1], "feedback": [1, 1],
                     "user_tokens": [1, 1], "audit_events": [3, 3]}
    assert await asyncio.to_thread(main, argv) == 0  # the CLI runs its own event loop
    assert all(copied == 0 for _, copied in json.loads(capsys.readouterr().out).values())

    assert (await target.take_held(held)).text == SECRET_TEXT
    assert await target.user_token("U1") == "xoxp-user-token"
    assert await target.allowed_fingerprints() == frozenset({"fp-allowed"})
    assert sorted(e["action"] for e in await target.audit_events()) == ["allow", "block", "redact", "warn"]
    await target.close()


def test_store_migrate_names_a_missing_source_and_a_bad_url(tmp_path, pg_url, monkeypatch, capsys):
    monkeypatch.setenv("SLACK_PII_SECRET_KEY", KEY.hex())
    assert main(["store", "migrate", "--from", f"sqlite:///{tmp_path}/nope.sqlite3", "--to", pg_url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--from" in err and "nope.sqlite3" in err and "fix" in err
    assert main(["store", "migrate", "--from", "mysql://x/y", "--to", pg_url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SLACK_PII_DATABASE_URL" in err and "'mysql'" in err


async def test_a_database_restart_fails_closed_then_the_pool_reconnects(pg_cluster):
    from tests.support.postgres import create_database

    url = create_database(pg_cluster.url())
    store = await PostgresStore.open(url, KEY, timeout_seconds=2)
    held = await store.hold(SECRET_TEXT, user="U1")
    try:
        pg_cluster.stop()
        with pytest.raises(StoreUnavailable) as raised:
            await store.mark_processed("event:during-outage")
        assert "SLACK_PII_DATABASE_URL" in str(raised.value) and str(pg_cluster.root) not in str(raised.value)
        assert await store.ping() is False
        pg_cluster.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while not await store.ping():
            assert loop.time() < deadline, "the pool did not reconnect after the database came back"
            await asyncio.sleep(0.1)
        assert (await store.take_held(held)).text == SECRET_TEXT  # nothing held was lost
        assert await store.mark_processed("event:during-outage") is True  # the refused one was not recorded
    finally:
        await store.close()


async def test_an_unreachable_database_at_start_up_is_one_line_naming_the_setting(tmp_path):
    url = f"postgresql://nobody@/db?host={tmp_path}&port=1"
    with pytest.raises(StoreUnavailable) as raised:
        await open_url(url, KEY, timeout_seconds=1)
    assert "SLACK_PII_DATABASE_URL" in str(raised.value) and "\n" not in str(raised.value)
    assert str(tmp_path) not in str(raised.value)
