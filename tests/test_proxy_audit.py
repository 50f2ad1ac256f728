"""The audit trail: every scanned request leaves a row of shapes; `slack-pii audit` lists and exports them."""

from __future__ import annotations

import csv
import io
import json

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from slack_pii.services import SERVICES
from slack_pii.cli import main
from slack_pii.commands.audit import parse_since
from slack_pii.keys import fingerprint
from tests.conftest import TEST_KEY, TEST_KEYS
from tests.factories import AWS_KEY, CARD, EMAIL
from tests.slack_double import double, proxy, proxy_settings  # noqa: F401 - fixtures


async def send_three(proxy):
    client = AsyncWebClient(token="xoxb-audited", base_url=str(proxy.make_url("/api/")))
    await client.chat_postMessage(channel="C1", text=f"card {CARD}")
    await client.chat_postMessage(channel="C2", text=f"mail {EMAIL}")
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C3", text=f"key {AWS_KEY}")


async def test_each_scanned_request_is_audited_with_shapes_only(proxy, scanner):
    await send_three(proxy)
    rows = await proxy.app[SERVICES].store.audit_events()
    assert [(r["method"], r["channel"], r["action"], r["status"]) for r in rows] == [
        ("chat.postMessage", "C1", "redact", 200), ("chat.postMessage", "C2", "warn", 200),
        ("chat.postMessage", "C3", "block", 200)]
    assert rows[0]["entities"] == {"CREDIT_CARD": 1} and rows[0]["rules"]
    assert {r["caller"] for r in rows} == {fingerprint("xoxb-audited", TEST_KEYS.fingerprints)}
    assert all(r["config_version"] == scanner.config_version and r["latency_ms"] > 0 for r in rows)
    dump = json.dumps(rows)
    for value in (CARD, EMAIL, AWS_KEY, "xoxb-audited"):
        assert value not in dump


@pytest.fixture
async def audited_config(proxy, tmp_path, proxy_settings):
    await send_three(proxy)
    config = tmp_path / "settings.yaml"
    config.write_text(f"data_dir: {proxy_settings.data_dir}\nsecret_key: '{TEST_KEY}'\n")
    return config


async def run_cli(*argv) -> str:
    import asyncio
    import contextlib

    out = io.StringIO()

    def call():
        with contextlib.redirect_stdout(out):
            return main(list(argv))

    assert await asyncio.to_thread(call) == 0
    return out.getvalue()


async def test_audit_exports_jsonl(audited_config):
    lines = (await run_cli("--config", str(audited_config), "audit", "--format", "jsonl")).splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["action"] for r in records] == ["redact", "warn", "block"]
    assert records[0]["time"].endswith("+00:00") and records[0]["entities"] == {"CREDIT_CARD": 1}


async def test_audit_exports_csv_and_limit(audited_config):
    text = await run_cli("--config", str(audited_config), "audit", "--format", "csv", "--limit", "2")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["action"] for r in rows] == ["warn", "block"] and rows[1]["channel"] == "C3"


async def test_audit_table_and_since(audited_config):
    table = await run_cli("--config", str(audited_config), "audit")
    assert "3 audit event(s)" in table and "redact" in table and CARD not in table
    future = await run_cli("--config", str(audited_config), "audit", "--since", "2999-01-01T00:00")
    assert "0 audit event(s)" in future


def test_since_accepts_durations_and_iso_times():
    assert parse_since("15m", now=10_000) == 10_000 - 900
    assert parse_since("2d", now=200_000) == 200_000 - 172_800
    assert parse_since("1970-01-01T00:01:00") == 60
    with pytest.raises(Exception):
        parse_since("yesterday")
