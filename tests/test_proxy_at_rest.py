"""Nothing raw at rest or in logs (issue 15, classes 6, 8, 10), and no post delivered twice."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from slack_pii.app import build_app
from slack_pii.services import SERVICES
from slack_pii.logs import AccessLogger, configure_logging, is_method_name
from slack_pii.store.audit import MessageScanned
from slack_pii.store.sqlite import Store
from tests.conftest import TEST_KEY
from tests.factories import AWS_KEY, CARD
from tests.slack_double import double, proxy, proxy_settings  # noqa: F401 - fixtures

COMPACT = CARD.replace(" ", "")


def raw_files(directory) -> bytes:
    """Every byte the store left on disk (database, WAL, journal)."""
    return b"".join(path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file())


async def post(proxy, path, **kwargs):
    async with aiohttp.ClientSession() as session:
        async with session.post(proxy.make_url(path), **kwargs) as response:
            return response.status, await response.read()


@pytest.mark.parametrize("channel", [COMPACT, f"#{COMPACT}", CARD, AWS_KEY])
async def test_a_value_typed_into_channel_reaches_neither_the_store_nor_the_logs(proxy, double, proxy_settings,
                                                                                 caplog, channel):
    caplog.set_level(logging.DEBUG)
    await post(proxy, "/api/chat.postMessage", json={"channel": channel, "text": "hello"})
    await post(proxy, "/services/T0ABCDEF12/B0ABCDEF34/abcdefghijklmnopqrstuvwx",
               json={"channel": channel, "text": "hello"})
    rows = await proxy.app[SERVICES].store.audit_events()
    assert len(rows) == 2 and all(row["channel"].startswith("fp:") for row in rows)
    await proxy.app[SERVICES].store._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    on_disk = raw_files(proxy_settings.data_dir)
    for value in {channel, COMPACT, AWS_KEY} & {channel, channel.lstrip("#")}:
        assert value.encode() not in on_disk
        assert value not in caplog.text
    for got in double.requests:
        assert COMPACT not in got.body.decode() and AWS_KEY not in got.body.decode()


@pytest.mark.parametrize("name", ["chat.a" + COMPACT, "conversations." + AWS_KEY, "files.x" + COMPACT[:6],
                                  "chat.postMessage\u200b", "xoxb-123.x"])
def test_method_names_that_could_hold_a_value_are_not_method_names(name):
    assert not is_method_name(name)


@pytest.mark.parametrize("name", ["chat.postMessage", "oauth.v2.access", "files.getUploadURLExternal",
                                  "admin.conversations.restrictAccess.addGroup", "apps.connections.open"])
def test_slack_method_names_are_method_names(name):
    assert is_method_name(name)


async def test_a_value_in_a_pass_through_method_name_is_neither_forwarded_nor_logged(proxy, double, caplog):
    caplog.set_level(logging.DEBUG)
    status, body = await post(proxy, f"/api/conversations.{AWS_KEY}", data=b"")
    assert status == 404 and json.loads(body)["error"] == "unknown_method"
    ours = [r for r in caplog.records if r.name != "aiohttp.access"]  # the test server's default access log
    assert double.requests == [] and all(AWS_KEY not in r.getMessage() for r in ours)


async def test_debug_logging_never_shows_sql_values(tmp_path):
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    try:
        configure_logging("DEBUG", "json")
        root.addHandler(Keep())
        store = await Store.open(tmp_path / "db.sqlite", bytes.fromhex(TEST_KEY))
        try:
            await store.hold(f"card {CARD}", user="U1", channel="C1")
            await store.record(MessageScanned(source="webapi", method="chat.postMessage", channel="C1", caller=None,
                                              action="allow"))
        finally:
            await store.close()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
    assert logging.getLogger("aiosqlite").getEffectiveLevel() >= logging.WARNING
    assert not [r for r in records if r.name.startswith("aiosqlite")]
    assert all(CARD not in r.getMessage() for r in records)


async def test_access_log_survives_malformed_requests(proxy_settings, scanner, caplog):
    caplog.set_level(logging.INFO)
    server = TestServer(build_app(proxy_settings, scanner=scanner), host="127.0.0.1", port=0,
                        access_log_class=AccessLogger)
    await server.start_server()
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"POST /api/chat.postMessage HTTP/1.1\r\nHost: x\r\n" + COMPACT.encode() + b"\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(1 << 16), timeout=30)
        writer.close()
    finally:
        await server.close()
    assert answer.split(b" ", 2)[1] == b"400"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    access = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert access and all(COMPACT not in r.getMessage() for r in access)


async def test_a_post_sent_as_get_is_not_resent_when_slack_drops_the_connection(proxy, double):
    double.answer("chat.postMessage", reset=True)
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.make_url("/api/chat.postMessage"),
                               params={"channel": "C1", "text": "deploy done"}) as response:
            status, body = response.status, await response.json()
    assert status == 502 and body["error"] == "upstream_connection_lost"
    assert len(double.received("chat.postMessage")) == 1
