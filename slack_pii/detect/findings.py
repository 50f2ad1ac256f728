"""What detection produces: `Finding`s (acted on by the policy) and `Suppressed` allow-list hits."""

from __future__ import annotations

from dataclasses import dataclass, field

from slack_pii.detect.slack_text import path_text


@dataclass(frozen=True)
class Finding:
    """One detected value: where it is (original offsets in the segment at `path`), what it is, and why.

    `value` is kept in memory for the allow-list and fingerprints only; it is excluded from repr, equality and
    every serialisation, so a logged Finding cannot leak it.
    """

    entity_type: str
    start: int
    end: int
    score: float
    rule: str
    pattern: str
    category: str
    path: tuple = ()
    context_words: tuple[str, ...] = ()
    value: str = field(default="", repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "entity_type": self.entity_type, "start": self.start, "end": self.end, "score": round(self.score, 3),
            "rule": self.rule, "pattern": self.pattern, "category": self.category,
            "path": path_text(self.path), "context_words": list(self.context_words),
        }


@dataclass(frozen=True)
class Suppressed:
    """A candidate an allow-list or the placeholder rule let through (explainability, never the value)."""

    entity_type: str
    rule: str
    reason: str
    path: tuple = ()
    value: str = field(default="", repr=False, compare=False)


@dataclass
class ScanResult:
    findings: list[Finding]
    suppressed: list[Suppressed]
