"""`slack-pii scan`: the human output, --json, and the --jsonl batch contract (a stable promise to tooling)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import CARD, EMAIL, SLACK_BOT, SSN

CONTRACT_KEYS = {"id", "findings", "verdict", "redacted"}
FINDING_KEYS = {"entity_type", "start", "end", "score", "action", "rule"}


def run_cli(*args: str, stdin: str = "", tmp_path=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, SLACK_PII_DATA_DIR=str(tmp_path or "data"), SLACK_PII_SECRET_KEY="cd" * 32)
    return subprocess.run([sys.executable, "-m", "slack_pii", *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=300)


def test_scan_shows_findings_decision_and_redacted_text(tmp_path):
    result = run_cli("scan", f"my card is {CARD}, token {SLACK_BOT}", tmp_path=tmp_path)
    assert result.returncode == 4, result.stderr  # block: see test_cli_errors for every exit code
    out = result.stdout
    assert "CREDIT_CARD" in out and "SLACK_TOKEN" in out and "Decision: block" in out
    assert "my card is •••••••••••••••1111, token [SLACK_TOKEN]" in out
    assert SLACK_BOT not in out and CARD not in out


def test_scan_explain_shows_rule_pattern_and_context(tmp_path):
    result = run_cli("scan", "--explain", f"my card is {CARD}; key AKIAIOSFODNN7EXAMPLE", tmp_path=tmp_path)
    assert "credit-card" in result.stdout and "card" in result.stdout
    assert "documented example value" in result.stdout  # allow-list hits are shown too


def test_jsonl_contract(tmp_path):
    lines = [
        {"id": 1, "text": f"card {CARD} and mail {EMAIL}"},
        {"id": "two", "text": "nothing to see here"},
        {"id": 3, "payload": {"channel": "C1", "text": f"SSN {SSN}", "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"hi <@U1> {CARD}"}}]}},
    ]
    stdin = "\n".join(json.dumps(line) for line in lines[:2]) + "\n{not json\n" + json.dumps(lines[2]) + "\n"
    result = run_cli("scan", "--jsonl", stdin=stdin, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 4
    first, second, bad, third = out
    assert set(first) == CONTRACT_KEYS and first["id"] == 1
    for f in first["findings"]:
        assert set(f) == FINDING_KEYS
        assert lines[0]["text"][f["start"]:f["end"]] in (CARD, EMAIL)
    assert {f["entity_type"]: f["action"] for f in first["findings"]} == {"CREDIT_CARD": "redact", "EMAIL_ADDRESS": "warn"}
    assert first["verdict"] == "redact" and CARD not in first["redacted"] and EMAIL in first["redacted"]
    assert second == {"id": "two", "findings": [], "verdict": "allow", "redacted": "nothing to see here"}
    assert bad["line"] == 3 and "error" in bad and "line 3" in result.stderr
    assert third["id"] == 3 and third["verdict"] == "redact"
    assert {f["path"] for f in third["findings"]} == {"/text", "/blocks/0/text/text"}
    assert third["redacted"]["blocks"][0]["text"]["text"].startswith("hi <@U1> ")


def test_jsonl_reports_allowed_findings_too(tmp_path):
    result = run_cli("scan", "--jsonl", stdin=json.dumps({"id": 1, "text": "Sarah Connor met John Smith in Berlin"}) + "\n",
                     tmp_path=tmp_path)
    record = json.loads(result.stdout)
    assert record["verdict"] == "allow"
    assert {f["entity_type"] for f in record["findings"]} >= {"PERSON"}
    assert all(f["action"] == "allow" for f in record["findings"])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_jsonl_order_is_kept_across_workers(tmp_path, workers):
    stdin = "".join(json.dumps({"id": i, "text": f"n{i} {CARD if i % 7 == 0 else 'ok'}"}) + "\n" for i in range(300))
    result = run_cli("scan", "--jsonl", "--workers", workers, stdin=stdin, tmp_path=tmp_path)
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in out] == list(range(300))
    assert [r["verdict"] for r in out] == ["redact" if i % 7 == 0 else "allow" for i in range(300)]


def test_missing_model_names_the_fix(tmp_path):
    env_model = {"SLACK_PII_SPACY_MODEL": "en_core_web_nonexistent"}
    result = subprocess.run([sys.executable, "-m", "slack_pii", "scan", "hello"], capture_output=True, text=True,
                            env=dict(os.environ, SLACK_PII_DATA_DIR=str(tmp_path), **env_model), timeout=120)
    assert result.returncode == 2
    assert "pip install" in result.stderr and "SLACK_PII_SPACY_MODEL" in result.stderr
    assert "Traceback" not in result.stderr


# --- commands that only read leave nothing behind --------------------------------------------------------------


def run_bare(*args: str, cwd, **env) -> subprocess.CompletedProcess:
    """The CLI as someone runs it in their home or a checkout: no data dir and no key configured."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_PII_")}
    return subprocess.run([sys.executable, "-m", "slack_pii", *args], capture_output=True, text=True,
                          env={**clean, **env}, cwd=cwd, timeout=300)


def test_scan_creates_no_key_or_store_and_names_a_one_off_pseudonym_key(tmp_path):
    policy = tmp_path / "conf" / "policy.yaml"
    policy.parent.mkdir()
    shipped = (Path(__file__).resolve().parent.parent / "recognizers" / "policy.yaml").read_text()
    policy.write_text(shipped.replace("person: allow", "person: redact", 1))
    cwd = tmp_path / "work"
    cwd.mkdir()

    named = run_bare("scan", "Please call Jane Doe about the refund", cwd=cwd, SLACK_PII_POLICY_FILE=str(policy))
    assert named.returncode == 3, named.stderr  # 3: the verdict is redact
    assert "[PERSON-" in named.stdout and "Jane Doe" not in named.stdout.split("Redacted:")[1]
    assert "one-off key" in named.stderr and "SLACK_PII_SECRET_KEY" in named.stderr

    unnamed = run_bare("scan", f"refund card {CARD}", cwd=cwd, SLACK_PII_POLICY_FILE=str(policy))
    assert unnamed.returncode == 3 and "•1111" in unnamed.stdout and unnamed.stderr == ""  # no pseudonym: no note

    keyed = run_bare("scan", "Please call Jane Doe about the refund", cwd=cwd, SLACK_PII_POLICY_FILE=str(policy),
                     SLACK_PII_SECRET_KEY="cd" * 32)
    assert "[PERSON-" in keyed.stdout and keyed.stderr == ""
    assert list(cwd.iterdir()) == []  # no data/, no secret.key, no database
