"""Time limits that refuse runaway regexes and nothing else: not checking code, not first-use loading, not a GC.

NOTE: the `regex` module's timeout counts process CPU time (C `clock()`) from the start of the call, so CPU spent
anywhere in between (a validator, an import, a collection, another thread) used to count against a rule's limit.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest

from slack_pii.detect import rules
from slack_pii.detect.engine import Engine
from slack_pii.detect.rules import Placeholders, RuleSet, load_rules, parse_rule
from slack_pii.detect.slack_text import extract_segments
from slack_pii.errors import DetectionError


def _ruleset(**rule) -> RuleSet:
    problems = []
    raw = {"id": "test-rule", "entity": "TEST_THING", "category": "credential", "placeholders": False, **rule}
    parsed = parse_rule(raw, "test.yaml", problems)
    assert not problems, problems
    return RuleSet([parsed], Placeholders({}))


def _burn_cpu(seconds: float) -> None:
    started = time.process_time()
    while time.process_time() - started < seconds:
        pass


def test_checking_code_does_not_count_against_the_regex_limit(monkeypatch):
    """A validator that costs more CPU than the whole limit (as tldextract's first load plus a full GC did)."""
    monkeypatch.setattr(rules, "REGEX_SECONDS_FLOOR", 0.05)
    monkeypatch.setattr(rules, "REGEX_SECONDS_PER_CHAR", 0.0)

    def slow_validator(value: str) -> bool:
        _burn_cpu(0.1)
        return True

    monkeypatch.setitem(rules.VALIDATORS, "slow_check", slow_validator)
    ruleset = _ruleset(patterns=[{"regex": r"\b[a-z]+@[a-z]+\.com\b", "score": 0.5}], validator="slow_check")
    text = "a@acme.com " + "and some words " * 20_000 + "b@acme.com"
    matches, _ = ruleset.find(text)
    assert [text[m.start:m.end] for m in matches] == ["a@acme.com", "b@acme.com"]


def test_a_runaway_pattern_still_fails_closed_within_its_limit():
    ruleset = _ruleset(patterns=[{"regex": "(?:a|aa)+b", "score": 0.5}], keywords=["aaa"])  # gated: no prefilter skip
    engine = Engine.build(ruleset=ruleset, ner=False)
    started = time.process_time()
    with pytest.raises(DetectionError, match="TimeoutError"):
        engine.scan(extract_segments("a" * 60 + "!"))
    # The limit is what stopped it (an exponential pattern on 60 characters runs for ages otherwise).
    assert time.process_time() - started < 30


def test_the_budget_grows_with_the_text_so_a_long_benign_message_is_not_refused():
    assert rules.regex_budget(10) == rules.REGEX_SECONDS_FLOOR
    assert rules.regex_budget(40_000) > rules.REGEX_SECONDS_FLOOR


def test_the_first_message_after_start_up_pays_no_first_use_cost():
    """Warm-up at build: the first message (e-mail, +CC phone of a region not seen yet, a name) allocates about
    what any later one does. Without it the first e-mail loads tldextract's suffix list (~6 MB)."""
    engine = Engine.build(ruleset=load_rules(check_examples=False))
    first = "mail jane.doe@acme.co.uk or call +61 2 9374 4000, Marta Kowalska from Gdansk"
    later = "mail bob@corp.io, Sven in Oslo on +47 22 12 34 56"
    peaks = []
    for text in (first, later):
        tracemalloc.start()
        try:
            engine.scan(extract_segments(text))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[0] < max(3 * peaks[1], 1_000_000), peaks
