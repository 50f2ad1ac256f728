"""Every YAML rule checks itself: its `match` examples are found, its `no_match` examples are not."""

from __future__ import annotations

import pytest

from slack_pii.detect.rules import load_rules

RULESET = load_rules(check_examples=False)


@pytest.mark.parametrize("rule", RULESET.rules, ids=lambda r: r.id)
def test_rule_examples(rule):
    for example in rule.examples_match:
        matches, _ = RULESET.find(example, [rule])
        assert matches, f"{rule.id} missed its own match example {example!r}"
    for example in rule.examples_no_match:
        matches, _ = RULESET.find(example, [rule])
        assert not matches, f"{rule.id} fired on its own no_match example {example!r}"


def test_every_rule_has_examples():
    lacking = [r.id for r in RULESET.rules if not r.examples_match]
    assert not lacking, f"rules without match examples: {lacking}"


def test_prefilter_never_hides_a_match():
    """The hyperscan prefilter must be a superset: on every example, prefiltered == unfiltered findings."""
    texts = [e for r in RULESET.rules for e in r.examples_match + r.examples_no_match]
    texts += ["pässword: hünter2-x", "ｐａｓｓｗｏｒｄ=abc12345", "carte ４１１１ １１１１ １１１１ １１１１"]
    for text in texts:
        filtered, _ = RULESET.find(text)
        unfiltered, _ = RULESET.find(text, RULESET.rules)
        assert {(m.rule.id, m.start, m.end) for m in filtered} == {(m.rule.id, m.start, m.end) for m in unfiltered}, text
