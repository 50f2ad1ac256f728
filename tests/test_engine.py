"""The engine: built once, offline, fails closed, and explains what it found."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from slack_pii.detect.engine import Engine, could_hold_name
from slack_pii.errors import DetectionError
from slack_pii.detect.slack_text import extract_segments
from slack_pii.detect.rules import DEFAULT_RULES_DIR

PATHOLOGICAL = """
rules:
  - id: backtracking-trap
    entity: GENERIC_SECRET
    category: credential
    patterns:
      - name: catastrophic (test only)
        regex: '(a|aa)+!'
        score: 0.9
    examples:
      match: ['aaa!']
"""


def test_runaway_regex_fails_closed_quickly(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "trap.yaml").write_text(PATHOLOGICAL)
    shutil.copy(Path(DEFAULT_RULES_DIR).parent / "placeholders.yaml", tmp_path / "placeholders.yaml")
    engine = Engine.build(rules, ner=False)
    started = time.process_time()  # the limit counts CPU time: wall time on a loaded machine says nothing
    with pytest.raises(DetectionError) as info:
        engine.scan(extract_segments("a" * 40 + "? a!"))
    assert time.process_time() - started < 5
    assert "aaaa" not in str(info.value)


def test_findings_explain_themselves(engine):
    text = "please charge my visa 4111 1111 1111 1111"
    finding = engine.scan(extract_segments(text)).findings[0]
    assert (finding.rule, finding.entity_type, finding.score) == ("credit-card", "CREDIT_CARD", 1.0)
    assert "visa" in finding.context_words and finding.pattern.startswith("card number")
    assert "4111" not in repr(finding) and "4111" not in str(finding.to_dict())


def test_placeholders_are_recorded_as_allow_hits(engine):
    result = engine.scan(extract_segments("key AKIAIOSFODNN7EXAMPLE and token xoxb-xxxxxxxxxxxx-xxxxxxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx"))
    assert result.findings == []
    assert {s.rule for s in result.suppressed} >= {"aws-access-key-id"}


@pytest.mark.parametrize("text, expected", [
    ("hey team, deploy done", False), ("Version 1.2.3 is out", False), ("Thanks! See you Monday", False),
    ("Sarah said hi", True), ("ping Jonas about Berlin", True),
])
def test_ner_gate(text, expected):
    assert could_hold_name(text) is expected


def test_ner_finds_names_in_prose_but_not_in_code(engine):
    result = engine.scan(extract_segments("Sarah Connor asked about it\n```\nJohn Smith = get_user()\n```"))
    people = [f for f in result.findings if f.entity_type == "PERSON"]
    assert [p.value for p in people] == ["Sarah Connor"]


@pytest.mark.parametrize("value, expected", [
    ("Sarah Connor", True), ("O'Brien", True), ("Jean-Luc Picard", True), ("St. Louis", True), ("José Álvarez", True),
    ("OPS-9683", False), ("PAY-8490", False), ("R2D2", False), ("NASA", False), ("api-gateway", False),
])
def test_ner_output_must_look_like_a_name_or_place(value, expected):
    from slack_pii.detect.engine import looks_like_a_name

    assert looks_like_a_name(value) is expected


@pytest.mark.parametrize("text, acted_on", [
    ("ping +44 20 7946 0958 tomorrow", True),    # international notation is a phone on purpose
    ("call me at (415) 555-0132", True),          # context word
    ("ring 07700 900123", False),                 # national format, no context: reported, below threshold
    ("delta +12345678 in the ledger", False),     # not a valid number
])
def test_phone_scores(engine, text, acted_on):
    phones = [f for f in engine.scan(extract_segments(text)).findings if f.entity_type == "PHONE_NUMBER"]
    assert any(f.score >= 0.5 for f in phones) is acted_on


def test_country_recognizers_are_enabled_by_name_in_the_policy(tmp_path):
    """Presidio's predefined country recognizers run when the policy names them, as category government_id."""
    from slack_pii.config import load_settings
    from slack_pii.detect.scanner import build_scanner

    policy = tmp_path / "policy.yaml"
    policy.write_text("country_recognizers: [UkNinoRecognizer]\ncategories: {government_id: redact}\n"
                      "entities: {UK_NINO: block}\n", encoding="utf-8")
    scanner = build_scanner(load_settings(None, policy_file=policy, ner=False))
    outcome = scanner.scan("my NI number is AB 12 34 56 C")
    assert [(f.entity_type, f.category) for f in outcome.findings] == [("UK_NINO", "government_id")]
    assert outcome.verdict == "block"


def test_an_unknown_country_recognizer_stops_start_up(tmp_path):
    from slack_pii.detect.engine import country_recognizers
    from slack_pii.errors import ConfigError

    with pytest.raises(ConfigError, match="FooRecognizer"):
        country_recognizers(["FooRecognizer"])
