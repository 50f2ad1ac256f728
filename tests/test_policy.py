"""The policy is pure: findings and a context in, a decision with reasons out."""

from __future__ import annotations

import re

from slack_pii.detect.policy import Context, Policy, Scope, decide, load_policy
from slack_pii.keys import fingerprint
from tests.factories import finding

SHIPPED = load_policy()


def test_shipped_defaults_match_what_security_teams_expect():
    cases = {
        ("SLACK_TOKEN", "credential"): "block", ("CREDIT_CARD", "financial"): "redact",
        ("US_SSN", "government_id"): "redact", ("IBAN_CODE", "financial"): "redact",
        ("US_PASSPORT", "government_id"): "redact", ("EMAIL_ADDRESS", "contact"): "warn",
        ("PHONE_NUMBER", "contact"): "warn", ("PERSON", "person"): "allow", ("LOCATION", "location"): "allow",
    }
    for (entity, category), expected in cases.items():
        decision = decide([finding(entity, category=category, value="v4lue-x")], SHIPPED)
        assert decision.verdict == expected, entity


def test_verdict_is_the_strongest_action_and_reasons_name_rules_not_values():
    secret = "xoxb-2176513720196-2193830572625-3bNfJdIL9nFHpJ8oyg1QaXkG"
    decision = decide([
        finding("EMAIL_ADDRESS", value="bob@acme-corp.com"),
        finding("SLACK_TOKEN", rule="slack-bot-token", category="credential", value=secret, start=10, end=20),
    ], SHIPPED)
    assert decision.verdict == "block"
    assert any("slack-bot-token" in r for r in decision.reasons)
    assert not any(secret in r or "bob@" in r for r in decision.reasons)


def test_below_threshold_is_reported_but_allowed():
    decision = decide([finding("US_SSN", category="government_id", score=0.3, value="536224586")], SHIPPED)
    assert decision.verdict == "allow" and "below threshold" in decision.actions[0].reason


def test_allow_list_values_patterns_and_fingerprints():
    assert decide([finding(value="support@example.com")], SHIPPED).verdict == "allow"
    assert decide([finding(value="Support@Example.com")], SHIPPED).verdict == "allow"
    assert decide([finding(value="bob@test.org")], SHIPPED).verdict == "allow"
    key = b"k" * 32
    value = "jane@acme-corp.com"
    context = Context(fingerprint_key=key, extra_allow_fingerprints=frozenset({fingerprint(value, key)}))
    assert decide([finding(value=value)], SHIPPED, context).verdict == "allow"
    assert decide([finding(value=value)], SHIPPED).verdict == "warn"


def test_channel_overrides_by_id_and_name():
    policy = Policy(base=Scope(categories={"credential": "block"}),
                    channels={"C0SEC": Scope(categories={"credential": "redact"}),
                              "#incidents": Scope(entities={"SLACK_TOKEN": "warn"})})
    token = finding("SLACK_TOKEN", category="credential", value="xoxb-1")
    assert decide([token], policy).verdict == "block"
    assert decide([token], policy, Context(channel_id="C0SEC")).verdict == "redact"
    assert decide([token], policy, Context(channel_name="incidents")).verdict == "warn"


def test_fingerprint_is_keyed():
    assert fingerprint("078-05-1123", b"a" * 32) != fingerprint("078-05-1123", b"b" * 32)
    assert re.fullmatch(r"[0-9a-f]{24}", fingerprint("x", b"a" * 32))


def test_no_findings_means_allow():
    assert decide([], SHIPPED).verdict == "allow"
