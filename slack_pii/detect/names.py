"""Names where the layout says a person is named: `Name <email>`, `From: Name`, chat transcripts `[15:30] Name:`,
vCard `FN:` and iCalendar `CN=`. NER misses these (code blocks are not run through it, and the small model does
not know most names of the world); the layout does not care about origin or case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from slack_pii.detect.structured import looks_like_person


@dataclass(frozen=True)
class NameSpan:
    start: int
    end: int
    rule: str


_WORD = r"[^\W\d_](?:[^\W\d_]|['’.\-])*"
# Up to five words right before `<email>`, `&lt;email&gt;`, `(email)` or `<mailto:`: trimmed to the name below.
# NOTE: the scan text has Slack's `<mailto:...|...>` markup blanked to spaces, so a bare address counts too.
# Searched backwards from each address (bounded), not across the whole text.
_BEFORE_EMAIL = re.compile(rf"(?P<name>(?:{_WORD}[ \t]+){{1,4}}{_WORD})[ \t]*(?P<open><|&lt;|\(|[ \t])(?P<mailto>mailto:)?$")
_EMAIL_START = re.compile(r"(?<![\w.+\-%])[\w.+\-%]+@")
# A capitalised full name right after a word that introduces a person, ending at punctuation or a dash:
# `payroll correction for Kavya Deshpande:`, `patient Parisa Rahimi,`, `Virement pour Mathieu Faure —`.
_CUE = (r"(?:for|patient|employee|applicant|customer|client|candidate|cardholder|driver|conductor|lead|hire|by|"
        r"pour|para|per|für|voor|t\.n\.v\.|titular|kontoinhaber|inhaber|müşteri|paciente|paziente|cliente|"
        r"beneficiario|bénéficiaire|empfänger|contact|requested by|verified for|sent to|wire to|split for)")
_CAP = r"[^\W\d_a-zß-ÿ][^\W\d_]*(?:['’\-][^\W\d_]+)*\.?"
_AFTER_CUE = re.compile(rf"(?i:\b{_CUE})[:]?[ \t]+(?P<name>{_CAP}(?:[ \t]+(?:(?:van|von|de|der|da|del|di|la|le|bin|al|el)[ \t]+)*{_CAP}){{1,3}})(?=[ \t]*(?:[,:;(—–\-]|$|\n|[ \t]+(?:is|was|has|asked|signed|moved|approved|ka|prosi|sẽ)\b))")
# `[15:30] Name: text`, `15:30 Name: text`, `<Name> text` (IRC-style transcripts).
_TRANSCRIPT = re.compile(rf"(?m)^[ \t>]*\[?\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?:\s?[AaPp][Mm])?\]?[ \t]+(?P<name>{_WORD}(?:[ \t]+{_WORD}){{1,3}})[ \t]*:")
# vCard `FN:Name`, iCalendar `CN=Name` / `CN="Name"`, XML `<Nm>Name</Nm>` (ISO 20022 payments).
_CARD = re.compile(rf"(?m)(?:^FN(?:;[^:\n]*)?:|\bCN=\"?|(?:<|&lt;)Nm(?:>|&gt;))(?P<name>{_WORD}(?:[ \t]+{_WORD}){{1,3}})")
# Words that lead into a name without being part of it.
_LEAD_WORDS = frozenset("""
a an and the to for from in on at by of cc bcc with via loop looped ping ask asked email emailed mail mailed contact
contacts reach invite invited add added please pls thanks thx hi hey dear hello cc'd reply forward forwarded send sent
is was are be new old our my your their his her its this that these those me you we they us them also or but
""".split())


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    words = list(re.finditer(r"\S+", text[start:end]))
    while words and words[0].group().lower().strip(".,:;") in _LEAD_WORDS:
        words.pop(0)
    if not 2 <= len(words) <= 4:
        return None
    # In prose the name is capitalised, or the whole run is in one case (`paweł kowalski <p@x.com>`).
    if not (all(w.group()[0].isupper() for w in words) or all(w.group().islower() for w in words)):
        while words and not words[0].group()[0].isupper():
            words.pop(0)
        if len(words) < 2:
            return None
    while len(words) > 2 and not looks_like_person(text[start + words[0].start():start + words[-1].end()]):
        words.pop(0)  # `records for paweł kowalski`: the name is the tail
    if all(w.group().islower() for w in words) and any(w.group().strip(".,") in _LEAD_WORDS for w in words):
        return None  # `reach out to <mailto:...>`: lowercase prose, not a name
    name_start, name_end = start + words[0].start(), start + words[-1].end()
    return (name_start, name_end) if looks_like_person(text[name_start:name_end]) else None


def name_spans(text: str) -> list[NameSpan]:
    """Person names the layout points at."""
    spans = []
    if "@" in text:
        for address in _EMAIL_START.finditer(text):
            window_start = max(0, address.start() - 120)
            m = _BEFORE_EMAIL.search(text, window_start, address.start())
            if m is None:
                continue
            trimmed = _trim(text, *m.span("name"))
            bare = m.group("open") in (" ", "\t") and not m.group("mailto")
            if trimmed and bare and not all(w[0].isupper() for w in text[trimmed[0]:trimmed[1]].split()):
                continue  # `login as deploy@host`: without brackets only a capitalised name counts
            if trimmed:
                spans.append(NameSpan(*trimmed, "name-before-email"))
    if ":" in text:
        for m in _TRANSCRIPT.finditer(text):
            trimmed = _trim(text, *m.span("name"))
            if trimmed:
                spans.append(NameSpan(*trimmed, "transcript-speaker"))
    for m in _AFTER_CUE.finditer(text):
        name = m.group("name")
        words = name.split()
        if any(w.lower().strip(".") in _LEAD_WORDS or w.isupper() and len(w) > 1 for w in words):
            continue
        if looks_like_person(name):
            spans.append(NameSpan(m.start("name"), m.end("name"), "name-after-cue"))
    if "FN" in text or "CN=" in text or "Nm" in text:
        for m in _CARD.finditer(text):
            trimmed = _trim(text, *m.span("name"))
            if trimmed:
                spans.append(NameSpan(*trimmed, "card-name"))
    return spans
