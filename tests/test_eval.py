"""`slack-pii eval` on the shipped labelled sample: figures a security team can trust, and a working --compare."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEST_KEY
from slack_pii.tools.corpus import generate
from slack_pii.tools.evaluate import masked_snippet
from slack_pii.detect.rules import DEFAULT_RULES_DIR

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "labelled_sample.jsonl"


def run_eval(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLACK_PII_SECRET_KEY": TEST_KEY, "SLACK_PII_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "slack_pii", "eval", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def gold_values() -> list[str]:
    records = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    return [r["text"][s["start"]:s["end"]] for r in records for s in r["spans"] if s["end"] - s["start"] >= 8]


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory) -> tuple[dict, str]:
    result = run_eval(tmp_path_factory.mktemp("eval"), str(SAMPLE), "--json")
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["sets"]
    assert entry["in_sample"] is True
    return entry["current"], result.stdout


def test_shipped_sample_is_the_seeded_corpus():
    """The sample is reproducible: `python -m slack_pii.tools.corpus --seed 7 --count 600` writes exactly this file."""
    expected = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in generate(600, seed=7))
    assert SAMPLE.read_text(encoding="utf-8") == expected
    assert SAMPLE.stat().st_size < 1_000_000


def test_sample_spans_point_at_real_values():
    records = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    labels = {s["label"] for r in records for s in r["spans"]}
    assert {"SECRET", "CREDIT_CARD", "US_SSN", "PHONE_NUMBER", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS", "PERSON",
            "LOCATION", "DATE_OF_BIRTH", "US_BANK_NUMBER"} <= labels
    clean = [r for r in records if not r["spans"]]
    assert len(clean) > 100
    for record in records:
        for span in record["spans"]:
            value = record["text"][span["start"]:span["end"]]
            assert value == value.strip() and value


def test_json_shape(sample_report):
    report, _ = sample_report
    assert {"precision", "recall", "f1", "nagging", "high_severity_leak", "recall_non_ner"} <= set(report["overall"])
    assert report["messages"] == 600
    for label, figures in report["per_entity"].items():
        assert {"precision", "recall", "f1", "leak", "support"} <= set(figures), label
    assert report["per_entity"]["SECRET"]["support"] >= 50
    for row in report["worst_misses"]:
        assert {"label", "why", "count", "example"} <= set(row)
    for row in report["worst_false_alarms"]:
        assert {"rule", "label", "count", "example"} <= set(row)


def test_detection_is_good_on_our_own_sample(sample_report):
    report, _ = sample_report
    per = report["per_entity"]
    assert per["SECRET"]["recall"] >= 0.9 and per["SECRET"]["precision"] >= 0.9
    assert per["CREDIT_CARD"]["recall"] >= 0.95
    assert per["EMAIL_ADDRESS"]["recall"] >= 0.95
    assert per["IBAN_CODE"]["recall"] >= 0.9
    assert per["IP_ADDRESS"]["recall"] >= 0.9
    assert report["overall"]["f1"] >= 0.85
    assert report["overall"]["nagging"] <= 0.05
    assert report["overall"]["high_severity_leak"] <= 0.02


def test_output_never_contains_a_labelled_value(sample_report):
    _, stdout = sample_report
    leaked = [value for value in gold_values() if value in stdout]
    assert not leaked, f"{len(leaked)} labelled values printed"


def test_masked_snippet_keeps_context_and_hides_values():
    text = "call Jane at 415-867-2391 or jane@acme-corp.com today"
    masks = [(13, 25, "PHONE_NUMBER"), (29, 47, "EMAIL_ADDRESS"), (5, 9, "PERSON")]
    snippet = masked_snippet(text, 13, 25, masks)
    assert snippet.startswith("call ⟦PERSON⟧ at ⟦PHONE_NUMBER⟧ or ⟦EMAIL_ADDRESS⟧")
    assert "867" not in snippet and "acme" not in snippet and "Jane" not in snippet


def render_tables(sets: list[dict]) -> str:
    """The human output for a --json result (same code path as the CLI without --json)."""
    import io

    from rich.console import Console

    from slack_pii.commands import eval as eval_command

    buffer = io.StringIO()
    eval_command.print_report(sets, Console(file=buffer, width=200, highlight=False))
    return buffer.getvalue()


def test_table_output(sample_report):
    report, _ = sample_report
    output = render_tables([{"name": "sample", "path": str(SAMPLE), "in_sample": True, "current": report}])
    for label in report["per_entity"]:
        assert label in output
    assert "overall" in output and "Nagging" in output and "Worst misses" in output and "in-sample" in output
    assert not [value for value in gold_values() if value in output]


def test_compare_with_the_email_rule_removed(tmp_path):
    """A candidate config without the email rule: EMAIL_ADDRESS recall drops in the candidate column."""
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    contact = yaml.safe_load((rules / "contact.yaml").read_text())
    contact["rules"] = [r for r in contact["rules"] if r["id"] != "email-address"]
    (rules / "contact.yaml").write_text(yaml.safe_dump(contact, sort_keys=False))
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump({"recognizers_dir": str(rules)}))
    labels = tmp_path / "subset.jsonl"
    labels.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:200]))

    result = run_eval(tmp_path, str(labels), "--json", "--compare", str(candidate))
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["sets"]
    assert entry["current"]["per_entity"]["EMAIL_ADDRESS"]["recall"] >= 0.9
    assert entry["candidate"]["per_entity"]["EMAIL_ADDRESS"]["recall"] == 0.0
    assert entry["delta"]["per_entity"]["EMAIL_ADDRESS"]["recall"] <= -0.9
    assert entry["delta"]["per_entity"]["CREDIT_CARD"]["recall"] == 0.0  # nothing else moved
    assert entry["delta"]["overall"]["recall"] < 0

    table = render_tables([entry])
    assert "(candidate)" in table
    email_row = next(line for line in table.splitlines() if "EMAIL_ADDRESS" in line)
    assert "0.000 (-1.000)" in email_row or "0.000 (-0.9" in email_row


def test_bad_labels_file_names_the_line(tmp_path):
    labels = tmp_path / "bad.jsonl"
    labels.write_text('{"id": 1, "text": "hi", "spans": []}\n{"id": 2, "text": "secret sk_live_x", "spans": [{"start": 0}]}\n')
    result = run_eval(tmp_path, str(labels))
    assert result.returncode != 0
    assert "line 2" in result.stderr and "sk_live" not in result.stderr


def test_leak_rate_counts_what_would_reach_slack(tmp_path):
    """A redacted card leaks nothing; an allowed name stays readable; a blocked message leaks nothing at all."""
    card, key = "4111 1111 1111 1111", "AKIALALEMEL33243OLIB"
    lines = [
        {"id": "r", "text": f"refund card {card} today", "spans": [{"start": 12, "end": 12 + len(card), "label": "CREDIT_CARD"}]},
        {"id": "b", "text": f"aws key {key} for {card}", "spans": [
            {"start": 8, "end": 8 + len(key), "label": "SECRET"},
            {"start": 8 + len(key) + 5, "end": 8 + len(key) + 5 + len(card), "label": "CREDIT_CARD"}]},
        {"id": "c", "text": "standup moved to 10:30, room 4B", "spans": []},
    ]
    labels = tmp_path / "leak.jsonl"
    labels.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = run_eval(tmp_path, str(labels), "--json")
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["sets"]
    report = entry["current"]
    assert entry["in_sample"] is False and entry["name"] == "leak"
    assert report["per_entity"]["CREDIT_CARD"]["leak"] == 0.0
    assert report["overall"]["high_severity_leak"] == 0.0 and report["overall"]["high_severity_values"] == 3
    assert report["clean_messages"] == 1 and report["overall"]["nagging"] == 0.0


def test_coverage_and_readability_rules():
    from slack_pii.tools.evaluate import coverage, is_readable

    assert coverage(10, 20, [(10, 14)]) == 0.4 and coverage(10, 20, [(8, 13), (12, 16)]) == 0.6
    assert is_readable("4111111111111111", "card 411111111111•••• on file")  # an 8-character window survives
    assert not is_readable("4111111111111111", "card 4111111•••••1111 on file")
    assert is_readable("Li Wei", "thanks Li Wei!") and not is_readable("Li Wei", "thanks ⟨PERSON⟩!")


def test_stock_presidio_scored_side_by_side(tmp_path):
    labels = tmp_path / "subset.jsonl"
    labels.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:60]))
    result = run_eval(tmp_path, str(labels), "--stock")
    assert result.returncode == 0, result.stderr
    assert "stock Presidio" in result.stdout and "high-severity values leaked" in result.stdout
    assert not [value for value in gold_values() if value in result.stdout]


def test_no_labels_outside_a_checkout_names_the_fix(tmp_path):
    env = {**os.environ, "SLACK_PII_SECRET_KEY": TEST_KEY}
    result = subprocess.run([sys.executable, "-m", "slack_pii", "eval"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "pass LABELS.jsonl" in result.stderr
