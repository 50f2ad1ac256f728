"""`slack-pii remediate` against the Slack double: a dry run changes nothing, a real run edits each planned message
once (as its author, or deletes as the admin), a second run does nothing, and what it cannot change is listed."""

from __future__ import annotations

import asyncio
import json

from slack_pii.keys import keys_for
from slack_pii.store.sqlite import Store
from slack_pii.tools.history_api import Pacer, Reader, run_history_scan, web_client
from slack_pii.tools.history_remediate import Tokens, done_log_path, remediate
from tests.factories import AWS_KEY, CARD, EMAIL, SSN
from tests.slack_double import FakeWorkspace, double  # noqa: F401  (fixture)
from tests.test_history_api import settings_for

RAW = [CARD, SSN, AWS_KEY, CARD.replace(" ", "")]


def workspace() -> FakeWorkspace:
    def message(n: int, user: str, text: str, **extra) -> dict:
        return {"type": "message", "ts": f"1712000{n:03d}.000100", "user": user, "text": text,
                "user_team": "T0ACME0001", **extra}

    general = [
        message(1, "U0AUTHOR1", f"my card is {CARD}, thanks"),  # redact, as its author (token in the store)
        message(2, "U0AUTHOR1", "all good here"),
        message(3, "U0NOTOKEN", f"the applicant's ssn is {SSN}"),  # redact, but no token of theirs: Slack refuses
        message(4, "U0AUTHOR1", f"aws key {AWS_KEY}"),  # block: deleted with the admin token
        message(5, "U0PARTNER", f"card {CARD} for the partner deal", user_team="T0GLOBEX01"),  # Slack Connect
        message(6, "U0AUTHOR1", f"mail me at {EMAIL}"),  # warn: reported, not planned
        message(7, "U0AUTHOR1", "thread parent", thread_ts="1712000007.000100", reply_count=1),
        message(8, "U0AUTHOR1", f"reply with {CARD}", thread_ts="1712000007.000100"),  # a reply: redacted too
    ]
    return FakeWorkspace([{"id": "C0GENERAL1", "name": "general", "is_channel": True}], {"C0GENERAL1": general},
                         tokens={"xoxp-admin": "admin", "xoxp-author1": "U0AUTHOR1"})


def writes(double) -> list:
    return [r for r in double.requests if r.method in ("chat.update", "chat.delete")]


async def test_remediate_dry_run_then_apply_once_even_when_run_twice(double, scanner, tmp_path, monkeypatch, capsys):
    from slack_pii.cli import main

    async def run_cli(*args: str, env: dict) -> tuple[int, str, str]:
        """The real command, in a thread (it runs its own event loop) while the double serves on this one."""
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
        code = await asyncio.to_thread(main, list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    fake = workspace()
    double.workspace = fake
    settings = settings_for(double, tmp_path)
    plan = tmp_path / "remediation.jsonl"
    await run_history_scan(scanner, settings, tmp_path / "report", token="xoxp-admin", plan_path=plan,
                           per_minute=None)
    planned = {json.loads(line)["ts"][7:10]: json.loads(line)["action"] for line in plan.read_text().splitlines()}
    assert planned == {"001": "redact", "003": "redact", "004": "delete", "005": "redact", "008": "redact"}
    store = await Store.open(settings.database_path, keys_for(settings).at_rest)
    await store.save_user_token("U0AUTHOR1", "xoxp-author1")
    await store.close()
    before = json.dumps(fake.messages)
    reads_before = len(double.requests)
    env = {"SLACK_PII_DATA_DIR": str(tmp_path), "SLACK_PII_SECRET_KEY": settings.secret_key.get_secret_value(),
           "SLACK_PII_UPSTREAM_URL": double.api_url, "SLACK_USER_TOKEN": "xoxp-admin", "SLACK_PII_NER": "false"}

    code, out, err = await run_cli("remediate", str(plan), env=env)
    assert code == 1, err  # the Slack Connect message cannot be changed: listed, exit 1
    assert len(double.requests) == reads_before and json.dumps(fake.messages) == before  # no call, no change
    assert "dry run (nothing changed" in out and "would-redact" in out and "would-delete" in out
    assert "another workspace (Slack Connect)" in out and not done_log_path(plan).exists()

    code, out, err = await run_cli("remediate", str(plan), "--apply", env=env)
    assert code == 1, err
    general = {m["ts"][7:10]: m for m in fake.messages["C0GENERAL1"]}
    assert general["001"]["text"] == "my card is •••••••••••••••1111, thanks"
    assert general["008"]["text"] == "reply with •••••••••••••••1111"
    assert "004" not in general  # deleted
    assert general["003"]["text"].endswith(SSN) and general["005"]["text"].startswith(f"card {CARD}")
    assert "chat.update refused: cant_update_message" in out and "Slack Connect" in out
    updates = {r.args()["ts"][7:10]: r.headers["Authorization"] for r in double.received("chat.update")}
    assert updates == {"001": "Bearer xoxp-author1", "008": "Bearer xoxp-author1", "003": "Bearer xoxp-admin"}
    assert [r.args()["ts"][7:10] for r in double.received("chat.delete")] == ["004"]
    assert [r.headers["Authorization"] for r in double.received("chat.delete")] == ["Bearer xoxp-admin"]

    # run twice: the done-log skips what is finished; only the refused item is tried again
    writes_before = len(writes(double))
    reader = Reader(web_client(settings, "xoxp-admin"), Pacer(None))
    store = await Store.open(settings.database_path, keys_for(settings).at_rest)
    try:
        outcomes = await remediate(scanner, plan, reader=reader, tokens=Tokens(store.user_token, "xoxp-admin"),
                                   apply=True, store=store, key=keys_for(settings).fingerprints)
        assert sorted(o.item.ts[7:10] for o in outcomes) == ["003", "005"]
        assert [r.args()["ts"][7:10] for r in writes(double)[writes_before:]] == ["003"]
        # without the done-log, the messages themselves say they are done: clean or gone, no second edit
        done_log_path(plan).unlink()
        writes_before = len(writes(double))
        outcomes = await remediate(scanner, plan, reader=reader, tokens=Tokens(store.user_token, "xoxp-admin"),
                                   apply=True, store=store, key=keys_for(settings).fingerprints)
        results = {o.item.ts[7:10]: o.result for o in outcomes}
        assert results == {"001": "already-clean", "003": "cannot", "004": "already-gone", "005": "cannot",
                           "008": "already-clean"}
        assert [r.args()["ts"][7:10] for r in writes(double)[writes_before:]] == ["003"]
        events = [e for e in await store.audit_events() if e["name"] == "message_remediated"]
    finally:
        await store.close()
    # one audit event per call: four in the first real run, then the refused one in each of the two re-runs
    assert sorted((e["detail"]["ts"][7:10], e["method"], e["detail"]["result"]) for e in events) == [
        ("001", "chat.update", "redacted"), ("003", "chat.update", "refused"), ("003", "chat.update", "refused"),
        ("003", "chat.update", "refused"), ("004", "chat.delete", "deleted"), ("008", "chat.update", "redacted")]
    first = next(e for e in events if e["detail"]["ts"].startswith("1712000001"))
    assert first["entities"] == {"CREDIT_CARD": 1} and first["caller"] and first["caller"] != "xoxp-author1"
    for path in [plan, done_log_path(plan) if done_log_path(plan).exists() else plan, settings.database_path,
                 *(tmp_path / "report").iterdir()]:
        data = path.read_bytes()
        assert not any(value.encode() in data for value in RAW + ["xoxp-author1"]), path.name


def test_a_bad_plan_is_one_line_naming_the_file_line_and_fix(tmp_path, monkeypatch, capsys):
    from slack_pii.cli import main

    monkeypatch.setenv("SLACK_PII_DATA_DIR", str(tmp_path / "data"))
    plan = tmp_path / "remediation.jsonl"
    plan.write_text('{"channel": "C1", "ts": "1.0", "action": "redact"}\n{"channel": "C1", "ts": "2.0", '
                    '"action": "shred"}\n')
    assert main(["remediate", str(plan)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{plan}: line 2: unknown action 'shred'" in err and "--plan" in err
    assert not (tmp_path / "data").exists()  # nothing was created for a plan that does not parse
