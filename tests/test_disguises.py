"""Evasion by disguise (issue 15, class 2): invisible characters, look-alike digits and letters, odd spaces and
dashes inside a value. The scan text folds them away; redaction removes the original characters with the value."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slack_pii.detect.slack_text import build_scan_text
from tests.fuzz.disguise import disguised
from tests.factories import AWS_KEY, SLACK_BOT

CARD = "4111111111111111"


def visible(text: str) -> str:
    """What a reader can make of `text`: the folded scan text without spaces or dashes."""
    return build_scan_text(text, "plain").text.replace(" ", "").replace("-", "")


CASES = [("CREDIT_CARD", CARD, 4), ("AWS_ACCESS_KEY", AWS_KEY, 0), ("SLACK_TOKEN", SLACK_BOT, 0)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), case=st.sampled_from(CASES))
def test_disguised_values_are_found_and_removed_whole(scanner, data, case):
    entity, value, groups = case
    hidden = data.draw(disguised(value, groups))
    text = f"here you go: {hidden} thanks"
    outcome = scanner.scan(text)
    found = [f for f in outcome.findings if f.entity_type.startswith(entity.split("_")[0])]
    assert found, f"{entity} not found in {hidden!r}"
    assert value.replace("-", "") not in visible(outcome.redacted)
    assert outcome.redacted.startswith("here you go: ") and outcome.redacted.endswith(" thanks")


@pytest.mark.parametrize("separator", ["\u2063", "\u180e", "\u034f", "\u2062", "\ufe0f", "\U000e0031"])
def test_named_invisible_separators_between_card_groups(scanner, separator):
    text = "card " + separator.join(["4111", "1111", "1111", "1111"]) + " ok"
    outcome = scanner.scan(text)
    assert [f.entity_type for f in outcome.findings] == ["CREDIT_CARD"]
    assert separator not in outcome.redacted.replace(" ok", "")  # removed with the value it was hiding in
    assert outcome.redacted.startswith("card ") and outcome.redacted.endswith(" ok")


def test_offsets_map_back_over_dropped_and_folded_characters():
    text = "x ４\u20631\u034f1\u180e1 y"
    scan = build_scan_text(text)
    assert scan.text == "x 4111 y"
    assert scan.to_original(2, 6) == (2, len(text) - 2)


def test_ordinary_text_is_unchanged():
    for text in ("José García naïve café", "שלום עולם", "日本語のテキスト", "emoji 👍🏽 ok"):
        assert build_scan_text(text).text == text
