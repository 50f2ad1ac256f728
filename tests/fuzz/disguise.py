"""Disguises for values: look-alike digits and letters of other scripts, invisible characters, odd spaces and dashes.

Shared by the disguise property test and the fuzz harness.
"""

from __future__ import annotations

from hypothesis import strategies as st

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\u2061", "\u2062", "\u2063", "\u2064", "\ufeff", "\u00ad",
             "\u034f", "\u180e", "\ufe0f", "\ufe00", "\U000e0101", "\u061c", "\u200e", "\u202a", "\u202c", "\u2066",
             "\U000e0020", "\u115f", "\u3164", "\u0301", "\u20dd"]
SPACES = [" ", "\u00a0", "\u2007", "\u2009", "\u202f", "\u3000", "\u2800", "-", "\u2010", "\u2013", "\u2212",
          "\uff0d"]


def digit_forms(d: int) -> list[str]:
    return [str(d), chr(0xFF10 + d), chr(0x660 + d), chr(0x6F0 + d), chr(0x966 + d), chr(0x1D7CE + d),
            chr(0x1D7EC + d), "⁰¹²³⁴⁵⁶⁷⁸⁹"[d], "₀₁₂₃₄₅₆₇₈₉"[d]]


def letter_forms(c: str) -> list[str]:
    forms = [c]
    if c.isalpha() and c.isascii():
        forms.append(chr((0xFF21 if c.isupper() else 0xFF41) + ord(c.upper() if c.isupper() else c) -
                         ord("A" if c.isupper() else "a")))
        forms += {"A": ["А", "Α"], "B": ["В", "Β"], "E": ["Е", "Ε"], "K": ["К", "Κ"], "M": ["М", "Μ"],
                  "O": ["О", "Ο"], "P": ["Р", "Ρ"], "T": ["Т", "Τ"], "X": ["Х", "Χ"], "I": ["І", "Ι"],
                  "a": ["а"], "e": ["е"], "o": ["о", "ο"], "p": ["р"], "c": ["с"], "x": ["х"]}.get(c, [])
    return forms


@st.composite
def disguised(draw, value: str, groups: int = 0):
    """`value` with each character drawn from its look-alikes, invisible characters between them and, every
    `groups` characters, an odd space or dash."""
    out = []
    for index, char in enumerate(value):
        if groups and index and index % groups == 0:
            out.append(draw(st.sampled_from(SPACES)))
        forms = digit_forms(int(char)) if char.isdigit() else letter_forms(char)
        out.append(draw(st.sampled_from(forms)))
        out.append("".join(draw(st.lists(st.sampled_from(INVISIBLE), max_size=2))))
    return "".join(out)
