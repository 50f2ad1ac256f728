"""Names the layout points at (detect/names.py) and NER PERSON spans trimmed to full names (engine.person_span)."""

import pytest

from slack_pii.detect.engine import person_span
from slack_pii.detect.names import name_spans


def names(text):
    return [text[n.start:n.end] for n in name_spans(text)]


@pytest.mark.parametrize("text, name", [
    ("can you loop in Priya Choudhury <mailto:priya426@quillhq.com|priya426@quillhq.com>", "Priya Choudhury"),
    ("From: Donghyun Kang <donghyun.kang@gmx.de>", "Donghyun Kang"),
    ("Author: Babatunde Oyelowo &lt;babatunde.oyelowo70@greenleaf.org&gt;", "Babatunde Oyelowo"),
    ("merged 2 records for paweł kowalski (pkowalski@globex.com)", "paweł kowalski"),
    ("```\n[12:08] Tobias Krüger: hi, please update my payout account\n```", "Tobias Krüger"),
    ("BEGIN:VCARD\nFN:Liu Xiuying\nTEL;TYPE=CELL:+254 778 610 250", "Liu Xiuying"),
    ("ATTENDEE;CN=Achieng Kariuki;RSVP=TRUE:mailto:achieng368@example.org", "Achieng Kariuki"),
])
def test_layout_names(text, name):
    assert name in names(text)


@pytest.mark.parametrize("text", [
    "send it to ops <ops@acme.io>", "[10:15] deploy: started", "contact support (help@acme.io) today",
])
def test_layout_without_a_full_name(text):
    assert names(text) == []


@pytest.mark.parametrize("value, expected", [
    ("Sarah Connor", "Sarah Connor"), ("thanks Priya Raman", "Priya Raman"), ("dzięki Katarzyna", None),
    ("Jenkins", None), ("Dr. Okafor", "Dr. Okafor"), ("Die Besprechung", None), ("David's", None),
    ("YETUNDE NWOSU", "YETUNDE NWOSU"), ("Calle de Alcalá", None),
])
def test_person_span(value, expected):
    span = person_span(value)
    assert (value[span[0]:span[1]] if span else None) == expected


@pytest.mark.parametrize("text, name", [
    ("payroll correction for Kavya Deshpande: ssn on file", "Kavya Deshpande"),
    ("Referral from Dr Lee — patient Parisa Rahimi, DOB 10/18/1975", "Parisa Rahimi"),
    ("overmaken t.n.v. Daan van der Meer, kenmerk 6991", "Daan van der Meer"),
    ("From: Donghyun Kang  donghyun.kang@gmx.de", "Donghyun Kang"),
])
def test_names_after_a_cue_or_before_a_bare_address(text, name):
    assert name in names(text)


@pytest.mark.parametrize("text", ["login as deploy@bastion-prod", "reach out to <mailto:hl@acme.io|hl@acme.io>",
                                  "thanks for Grafana, it works"])
def test_prose_before_an_address_is_not_a_name(text):
    assert names(text) == []
