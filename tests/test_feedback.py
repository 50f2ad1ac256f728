"""The false-positive loop: report by CLI, see it grouped by rule, allow it, and the running proxy lets it through.

The reported value is only ever on stdin: it must not appear in the CLI's output, the database files or the audit
trail, and a running proxy must pick the allow-list entry up without a restart.
"""

from __future__ import annotations

import asyncio
import io
import json
import time

import aiohttp
import pytest

from slack_pii.services import SERVICES
from slack_pii.cli import main
from slack_pii.config import Settings
from slack_pii.keys import fingerprint
from tests.conftest import TEST_KEY, TEST_KEYS
from tests.factories import EMAIL
from tests.slack_double import double, start_proxy  # noqa: F401 - fixture

OTHER_EMAIL = "ops-alerts@acme-corp.com"


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run `slack-pii ...` in-process against tmp_path; returns (exit code, stdout + stderr)."""
    monkeypatch.setenv("SLACK_PII_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SLACK_PII_SECRET_KEY", TEST_KEY)

    def run(*argv: str, stdin: str = "") -> tuple[int, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


def add(cli, value: str, rule="email-address", entity="EMAIL_ADDRESS", reporter="U0REPORTER"):
    return cli("feedback", "add", "--rule", rule, "--entity", entity, "--value-from-stdin", "--reporter", reporter,
               stdin=value + "\n")


def test_reports_are_grouped_by_rule_and_never_hold_the_value(cli, tmp_path):
    key = TEST_KEYS.fingerprints
    code, out = add(cli, EMAIL)
    assert code == 0 and fingerprint(EMAIL, key) in out and EMAIL not in out
    add(cli, EMAIL, reporter="U0OTHER")
    add(cli, OTHER_EMAIL)
    add(cli, "(415) 555-0132", rule="phone-number", entity="PHONE_NUMBER")

    code, out = cli("feedback", "list", "--json")
    assert code == 0
    groups = {g["rule_id"]: g for g in json.loads(out)}
    assert groups["email-address"]["reports"] == 3 and groups["email-address"]["values_reported"] == 2
    assert groups["email-address"]["fingerprints"][0] == {"fingerprint": fingerprint(EMAIL, key), "reports": 2,
                                                         "allowed": False}
    assert groups["phone-number"]["reports"] == 1
    code, table = cli("feedback", "list")
    assert code == 0 and "email-address" in table and fingerprint(OTHER_EMAIL, key) in table

    for text in (out, table):
        assert EMAIL not in text and OTHER_EMAIL not in text and "555-0132" not in text
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("slack-pii.sqlite3*"))
    assert stored and fingerprint(EMAIL, key).encode() in stored
    for value in (EMAIL, OTHER_EMAIL, "555-0132"):
        assert value.encode() not in stored


def test_bad_input_is_refused_with_the_fix(cli):
    assert add(cli, EMAIL, rule="no-such-rule")[0] == 2
    code, out = add(cli, EMAIL, entity="PHONE_NUMBER")
    assert code == 2 and "produces EMAIL_ADDRESS" in out
    assert add(cli, "   ")[0] == 2
    code, out = cli("feedback", "allow", "not-a-fingerprint")
    assert code == 2 and "24 hex" in out
    with pytest.raises(SystemExit):  # the value can never be given on the command line
        cli("feedback", "add", "--rule", "email-address", "--entity", "EMAIL_ADDRESS", EMAIL)


async def post(server, text: str) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.post(server.make_url("/api/chat.postMessage"), json={"channel": "C0FEEDBACK",
                                                                              "text": text}) as response:
            return await response.json()


async def test_allowing_a_fingerprint_lets_the_value_through_a_running_proxy(cli, tmp_path, double, scanner):
    key = TEST_KEYS.fingerprints
    settings = Settings(data_dir=tmp_path, secret_key=TEST_KEY, upstream_url=double.api_url,
                        webhook_upstream_url=double.base_url, watch_config=False)
    server = await start_proxy(settings, scanner)
    store = server.app[SERVICES].store
    try:
        assert (await post(server, f"write to {EMAIL}"))["ok"]
        assert (await store.audit_events())[-1]["action"] == "warn"

        code, out = await asyncio.to_thread(add, cli, EMAIL)
        assert code == 0
        code, out = await asyncio.to_thread(cli, "feedback", "allow", fingerprint(EMAIL, key), "--by", "secteam")
        assert code == 0 and "allow-listed" in out and EMAIL not in out

        deadline = time.monotonic() + 60  # the proxy polls the store every couple of seconds
        while True:
            await post(server, f"write to {EMAIL}")
            event = (await store.audit_events())[-1]
            if event["action"] == "allow" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert event["action"] == "allow"
        [finding] = [f for f in event["detail"]["findings"] if f["entity_type"] == "EMAIL_ADDRESS"]
        assert finding["action"] == "allow" and finding["reason"].endswith("allow-listed fingerprint")

        await post(server, f"write to {OTHER_EMAIL}")  # only that value is allowed, not the rule
        assert (await store.audit_events())[-1]["action"] == "warn"
        code, out = await asyncio.to_thread(cli, "feedback", "list", "--json")
        assert json.loads(out)[0]["allowed"] == 1
    finally:
        await server.close()
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("slack-pii.sqlite3*"))
    assert EMAIL.encode() not in stored and OTHER_EMAIL.encode() not in stored
