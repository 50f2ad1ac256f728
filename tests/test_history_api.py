"""`slack-pii history-scan` against the Slack double: cursor pages, threads, a 429 mid-way, a resume."""

from __future__ import annotations

import json

import pytest

from slack_pii.config import Settings
from slack_pii.tools.history import Filters, HistoryError
from slack_pii.tools.history_api import run_history_scan
from tests.conftest import TEST_KEY
from tests.factories import CARD, EMAIL, SLACK_BOT, SSN
from tests.slack_double import FakeWorkspace, Reply, double  # noqa: F401  (fixture)

PLANTS = [(f"card {CARD} for the refund", "CREDIT_CARD"), (f"her ssn is {SSN}", "US_SSN"),
          (f"mail {EMAIL} please", "EMAIL_ADDRESS"), (f"token {SLACK_BOT}", "SLACK_TOKEN")]
CHANNELS = [{"id": "C0GENERAL1", "name": "general", "is_channel": True},
            {"id": "G0PRIVATE1", "name": "security-team", "is_channel": True, "is_private": True},
            {"id": "D0DIRECT01", "is_im": True, "user": "U0000002"},
            {"id": "C0RANDOM01", "name": "random", "is_channel": True}]


def workspace() -> tuple[FakeWorkspace, dict[tuple[str, str], str]]:
    """130 top-level messages in #general (3 pages of 50), a thread of 60 replies (2 pages), the rest small."""
    messages: dict[str, list[dict]] = {c["id"]: [] for c in CHANNELS}
    planted: dict[tuple[str, str], str] = {}
    n = 0

    def post(channel: str, user: str, thread: str | None = None) -> dict:
        nonlocal n
        n += 1
        ts = f"{1712000000 + n * 60}.{n:06d}"
        text, entity = PLANTS[n % len(PLANTS)] if n % 5 == 0 else ("sounds good, shipping it", None)
        message = {"type": "message", "ts": ts, "user": user, "text": text, "team": "T0ACME0001"}
        if thread:
            message["thread_ts"] = thread
        messages[channel].append(message)
        if entity:
            planted[(channel, ts)] = entity
        return message

    for i in range(130):
        post("C0GENERAL1", f"U000000{i % 3}")
    parent = messages["C0GENERAL1"][10]
    parent.update(thread_ts=parent["ts"], reply_count=60)
    for _ in range(60):
        post("C0GENERAL1", "U0000001", thread=parent["ts"])
    broadcast = messages["C0GENERAL1"][-1]  # "also send to #general": in history and in its thread
    broadcast.update(subtype="thread_broadcast", text=f"card {CARD} for the refund")
    planted[("C0GENERAL1", broadcast["ts"])] = "CREDIT_CARD"
    for channel in ("G0PRIVATE1", "D0DIRECT01", "C0RANDOM01"):
        for _ in range(12):
            post(channel, "U0000002")
    return FakeWorkspace(CHANNELS, messages, tokens={"xoxp-admin": "admin"}), planted


def settings_for(double, tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, secret_key=TEST_KEY, upstream_url=double.api_url, watch_config=False,
                    upstream_timeout_seconds=10)


def read_findings(out) -> list[dict]:
    return [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]


async def test_history_scan_pages_through_everything_and_waits_out_a_429(double, scanner, tmp_path):
    fake, planted = workspace()
    fake.fail[("conversations.history", 2)] = Reply(429, {"ok": False, "error": "ratelimited"},
                                                    headers={"Retry-After": "0"})
    double.workspace = fake
    out = tmp_path / "report"
    result = await run_history_scan(scanner, settings_for(double, tmp_path), out, token="xoxp-admin",
                                    plan_path=tmp_path / "plan.jsonl", per_minute=None, page=50)
    lines = read_findings(out)
    keys = [(r["channel"], r["ts"]) for r in lines]
    assert len(keys) == len(set(keys)) and set(keys) == set(planted)
    for record in lines:
        assert {f["entity_type"] for f in record["findings"]} == {planted[(record["channel"], record["ts"])]}
        assert record["permalink"].startswith(f"https://acme.slack.com/archives/{record['channel']}/p")
    assert result["totals"]["scanned"] == sum(len(m) for m in fake.messages.values())
    assert result["totals"]["replies"] == 60
    history = double.received("conversations.history")
    # #general: 3 pages, the 2nd one asked twice (429, then the retry); one page for each other conversation
    assert len(history) == 3 + 1 + 3
    assert [r.args().get("cursor") for r in history[:4]] == [None, "50", "50", "100"]
    replies = double.received("conversations.replies")
    assert [r.args().get("cursor") for r in replies] == [None, "50"]
    assert all(r.headers["Authorization"] == "Bearer xoxp-admin" for r in history)
    assert "4111" not in (out / "report.html").read_text() and SSN not in (out / "summary.csv").read_text()


async def test_history_scan_resumes_at_the_conversation_it_had_not_finished(double, scanner, tmp_path):
    fake, planted = workspace()
    fake.fail[("conversations.history", 4)] = Reply(200, {"ok": False, "error": "internal_error"})  # 2nd conversation
    double.workspace = fake
    out, settings = tmp_path / "report", settings_for(double, tmp_path)
    with pytest.raises(HistoryError, match="conversations.history failed: internal_error"):
        await run_history_scan(scanner, settings, out, token="xoxp-admin", per_minute=None, page=50)
    assert {r["channel"] for r in read_findings(out)} == {"C0GENERAL1"}  # the first conversation was committed
    before = len(double.received("conversations.history"))
    result = await run_history_scan(scanner, settings, out, token="xoxp-admin", per_minute=None, page=50,
                                    filters=Filters(exclude_channels=("random",)))
    again = [r.args()["channel"] for r in double.received("conversations.history")[before:]]
    assert "C0GENERAL1" not in again and "C0RANDOM01" not in again
    assert result["run"]["units_resumed"] == 1 and result["run"]["skipped_units"] == {"in --exclude-channels": 1}
    keys = [(r["channel"], r["ts"]) for r in read_findings(out)]
    assert len(keys) == len(set(keys))
    assert set(keys) == {k for k in planted if k[0] != "C0RANDOM01"}


def test_history_scan_refuses_the_local_sink_and_a_missing_token_in_one_line(tmp_path, monkeypatch, capsys):
    from slack_pii.cli import main

    monkeypatch.setenv("SLACK_PII_DATA_DIR", str(tmp_path))
    for name in ("SLACK_BOT_TOKEN", "SLACK_USER_TOKEN", "SLACK_PII_UPSTREAM_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["history-scan", "--out", str(tmp_path / "r")]) == 2
    assert "SLACK_USER_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("SLACK_USER_TOKEN", "xoxp-1")
    monkeypatch.setenv("SLACK_PII_UPSTREAM_URL", "local")
    assert main(["history-scan", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SLACK_PII_UPSTREAM_URL is the built-in local sink" in err
    assert "xoxp-1" not in err


async def test_pacer_spaces_calls_of_a_method_by_its_tier_budget():
    from slack_pii.tools.history_api import Pacer
    from tests.factories import Clock

    clock, slept = Clock(100.0), []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 3))
        clock.now += seconds

    pacer = Pacer({"conversations.history": 50}, clock=clock, sleep=sleep)
    await pacer.wait("conversations.history")
    clock.now += 0.5
    await pacer.wait("conversations.history")  # 1.2 s apart at 50 per minute: waits the 0.7 s left
    await pacer.wait("users.info")  # no budget named: never waits
    assert slept == [0.7]
