"""The store, on SQLite and on PostgreSQL alike: held originals are encrypted at rest and expire by the
(injected) clock; audit rows hold shapes; idempotency keys and allow-lists behave the same on both."""

from __future__ import annotations

import pytest

from slack_pii.store import open_url
from slack_pii.store.audit import MessageScanned
from slack_pii.store.sqlite import Store
from tests.factories import CARD, SSN, Clock

KEY = bytes.fromhex("ab" * 32)
SECRET_TEXT = f"my card is {CARD} and my ssn {SSN}"



def store_url(request, tmp_path, name: str = "s") -> str:
    """A fresh database of the test's backend: a SQLite file in tmp_path, or a database on the test server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/{name}.sqlite3"
    return request.getfixturevalue("pg_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    return store_url(request, tmp_path)


@pytest.fixture
async def store(url):
    clock = Clock()
    opened = await open_url(url, KEY, clock=clock, hold_ttl_seconds=900)
    opened.clock = clock
    yield opened
    await opened.close()


async def test_hold_then_take_returns_the_original_once(store):
    held_id = await store.hold(SECRET_TEXT, user="U1", channel="C1", meta={"thread_ts": "1.2"})
    peeked = await store.peek(held_id)
    assert peeked.text == SECRET_TEXT and peeked.user == "U1" and peeked.meta == {"thread_ts": "1.2"}
    assert await store.take(held_id) == SECRET_TEXT
    assert await store.take(held_id) is None
    assert await store.take("no-such-id") is None


async def test_expired_holds_are_not_returned_and_are_purged(store):
    short = await store.hold("short-lived", ttl_seconds=60)
    long = await store.hold("long-lived")
    store.clock.now += 61
    assert await store.take(short) is None
    assert await store.count_held() == 1
    store.clock.now += 900
    assert await store.purge_expired() == 1
    assert await store.peek(long) is None


async def test_purge_expired_takes_an_explicit_now(store):
    await store.hold("a", ttl_seconds=10)
    assert await store.purge_expired(now=store.clock.now + 5) == 0
    assert await store.purge_expired(now=store.clock.now + 10) == 1


async def test_a_different_key_cannot_read_held_messages(url):
    first = await open_url(url, KEY)
    held_id = await first.hold(SECRET_TEXT)
    await first.close()
    other = await open_url(url, bytes.fromhex("cd" * 32))
    assert await other.take(held_id) is None
    await other.close()


async def test_no_plaintext_in_any_column(store):
    """What a database administrator (or a backup) sees: ciphertext for originals and user tokens."""
    await store.hold(SECRET_TEXT, user="U1", channel="C1", meta={"thread_ts": "1.2"})
    await store.save_user_token("U1", "xoxp-1111-2222-3333-secret")
    for table in ("held_messages", "user_tokens"):
        for row in await store._rows(f"SELECT * FROM {table}"):
            raw = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
            for needle in (SECRET_TEXT, CARD, SSN, "xoxp-1111"):
                assert needle.encode() not in raw
    assert await store.user_token("U1") == "xoxp-1111-2222-3333-secret"


async def test_no_plaintext_in_the_database_files(tmp_path):
    path = tmp_path / "raw.sqlite3"
    store = await Store.open(path, KEY)
    held_ids = [await store.hold(SECRET_TEXT, user="U1", channel="C1") for _ in range(3)]
    await store.take(held_ids[0])
    # Read while the connection is open: the WAL still holds the most recent pages.
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("raw.sqlite3"))
    assert any(p.name.endswith("-wal") for p in tmp_path.iterdir())
    for needle in (SECRET_TEXT, CARD, SSN, "my card is"):
        assert needle.encode() not in raw
        assert needle.encode("utf-16-le") not in raw
    await store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert CARD.encode() not in raw and SSN.encode() not in raw


async def test_audit_events_round_trip_shapes_only(store):
    await store.record(MessageScanned(source="webapi", method="chat.postMessage", channel="C1", caller="fp",
                                      action="redact", entities={"CREDIT_CARD": 2}, rules=["credit-card"],
                                      latency_ms=3.5, status=200, config_version="v1"))
    store.clock.now += 10
    await store.record(MessageScanned(source="webhook", method="webhook", channel=None, caller="fp2",
                                      action="allow"))
    rows = await store.audit_events()
    assert [r["action"] for r in rows] == ["redact", "allow"]
    assert rows[0]["entities"] == {"CREDIT_CARD": 2} and rows[0]["rules"] == ["credit-card"]
    assert rows[0]["name"] == "message_scanned" and rows[0]["status"] == 200
    assert [r["action"] for r in await store.audit_events(since=store.clock.now - 1)] == ["allow"]
    assert [r["action"] for r in await store.audit_events(limit=1)] == ["allow"]


async def test_processed_events_are_idempotency_keys(store):
    assert await store.mark_processed("Ev1") is True
    assert await store.mark_processed("Ev1") is False
    store.clock.now += 100
    assert await store.purge_processed(older_than=store.clock.now) == 1
    assert await store.mark_processed("Ev1") is True


async def test_feedback_records_fingerprints(store):
    await store.record_feedback("us-ssn", "US_SSN", "0123abcd", reporter="U1")
    [row] = await store.feedback()
    assert row["rule_id"] == "us-ssn" and row["fingerprint"] == "0123abcd"


async def test_allow_list_and_feedback_groups(store):
    await store.record_feedback("email-address", "EMAIL_ADDRESS", "fp1", reporter="U1")
    await store.record_feedback("email-address", "EMAIL_ADDRESS", "fp1", reporter="U2")
    await store.record_feedback("email-address", "EMAIL_ADDRESS", "fp2", reporter="U1")
    assert await store.allow_fingerprint("fp1", rule_id="email-address", entity_type="EMAIL_ADDRESS") is True
    assert await store.allow_fingerprint("fp1") is False
    assert await store.allowed_fingerprints() == frozenset({"fp1"})
    [group] = await store.feedback_by_rule()
    assert (group["reports"], group["values_reported"], group["allowed"]) == (3, 2, 1)
    rows = await store.feedback_fingerprints("email-address")
    assert [(r["fingerprint"], r["reports"], bool(r["allowed"])) for r in rows] == [("fp1", 2, True),
                                                                                    ("fp2", 1, False)]


async def test_user_tokens_are_replaced_not_duplicated(store):
    await store.save_user_token("U1", "xoxp-old")
    await store.save_user_token("U1", "xoxp-new")
    assert await store.user_token("U1") == "xoxp-new"
    assert await store.user_token("U2") is None
    assert (await store._rows("SELECT count(*) AS n FROM user_tokens"))[0]["n"] == 1


async def test_schema_version_is_recorded_and_reopening_migrates_nothing(url):
    first = await open_url(url, KEY)
    versions = [r["version"] for r in await first._rows("SELECT version FROM schema_version ORDER BY version")]
    await first.close()
    assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 2
    again = await open_url(url, KEY)
    assert [r["version"] for r in await again._rows("SELECT version FROM schema_version ORDER BY version")] \
        == versions
    await again.close()


async def test_a_store_made_before_versioning_is_adopted(tmp_path):
    """A SQLite file from before schema_version existed keeps its rows and gains the versions."""
    import aiosqlite

    from slack_pii.store.base import migrations

    path = tmp_path / "old.sqlite3"
    async with aiosqlite.connect(path) as conn:
        await conn.executescript(migrations("sqlite")[0].sql)
        await conn.execute("INSERT INTO allow_fingerprints (fingerprint, created) VALUES ('fp-old', 1)")
        await conn.commit()
    store = await Store.open(path, KEY)
    assert await store.allowed_fingerprints() == frozenset({"fp-old"})
    assert len(await store._rows("SELECT version FROM schema_version")) == len(migrations("sqlite"))
    await store.close()


def test_without_postgresql_the_tests_skip_with_a_reason_but_fail_under_ci(monkeypatch):
    from tests.support import postgres

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run under CI: no initdb"):
        postgres.unavailable("no initdb")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="SLACK_PII_TEST_DATABASE_URL"):
        postgres.unavailable("no initdb")
