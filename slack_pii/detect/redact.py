"""Apply a Decision to segments with presidio-anonymizer operators. The policy decides; this only writes.

Output stays valid Slack mrkdwn: replacement labels hold no markup characters, mentions/channels/emoji are
never touched, and a link whose target held a redacted value is turned into plain text (its redacted label),
because a link to a redacted URL cannot work and must not leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from presidio_anonymizer.operators import Hash, Mask, Replace

from slack_pii.detect.findings import Finding
from slack_pii.detect.policy import Decision, Policy, Redaction
from slack_pii.detect.slack_text import Path, Segment


@dataclass(frozen=True)
class Replacement:
    start: int
    end: int
    text: str


class Redactor:
    """Turns findings into replacement strings; built once (operators are stateless, the key is fixed)."""

    def __init__(self, policy: Policy, hash_key: bytes):
        self.policy = policy
        self.hash_key = hash_key
        self._replace, self._mask, self._hash = Replace(), Mask(), Hash()

    def replacement(self, finding: Finding) -> str:
        config: Redaction = self.policy.redaction_for(finding.entity_type)
        value = finding.value
        if config.operator == "mask" and len(value) > config.keep_last:
            return self._mask.operate(value, {"masking_char": config.char[:1] or "•",
                                              "chars_to_mask": len(value) - config.keep_last, "from_end": False})
        if config.operator == "hash":
            digest = self._hash.operate(value, {"hash_type": "sha256", "salt": self.hash_key})
            return f"[{finding.entity_type}-{digest[:10]}]"
        return self._replace.operate(value, {"new_value": f"[{finding.entity_type}]"})

    def redact(self, segments: Sequence[Segment], decision: Decision) -> dict[Path, str]:
        """New text for every segment that holds a value to redact; other segments are absent."""
        by_path: dict[Path, list[Replacement]] = {}
        for finding in decision.to_redact:
            by_path.setdefault(finding.path, []).append(
                Replacement(finding.start, finding.end, self.replacement(finding)))
        edits = {}
        for segment in segments:
            if segment.path in by_path:
                edits[segment.path] = redact_segment(segment, by_path[segment.path])
        return edits


def redact_segment(segment: Segment, replacements: list[Replacement]) -> str:
    """Splice replacements into one segment's original text, handling mrkdwn links."""
    text = segment.text
    pending = sorted(replacements, key=lambda r: r.start)
    for link in segment.scan.links if segment.kind == "mrkdwn" else ():
        in_target = _clip(pending, link.target)
        if not in_target:
            continue
        shown = link.label or link.target
        in_shown = _clip(pending, shown)
        plain = _splice(text[shown[0]:shown[1]], in_shown)
        if link.label is not None and not in_shown:
            # The label showed nothing sensitive: keep it, and say what the link pointed at.
            plain += " (" + " ".join(r.text for r in in_target) + ")"
        # The link token (and any replacement that crosses its edge) becomes one plain replacement.
        crossing = [r for r in pending if r.start < link.end and link.start < r.end]
        start = min([link.start] + [r.start for r in crossing])
        end = max([link.end] + [r.end for r in crossing])
        prefix = "".join(r.text for r in crossing if r.start < link.start)
        suffix = "".join(r.text for r in crossing if r.end > link.end)
        pending = sorted([r for r in pending if r not in crossing] + [Replacement(start, end, prefix + plain + suffix)],
                         key=lambda r: r.start)
    return _splice(text, pending)


def _clip(replacements: list[Replacement], span: tuple[int, int]) -> list[Replacement]:
    """The replacements that touch `span`, cut to it and shifted to offsets within it."""
    lo, hi = span
    return [Replacement(max(r.start, lo) - lo, min(r.end, hi) - lo, r.text)
            for r in replacements if r.start < hi and lo < r.end]


def _splice(text: str, replacements: list[Replacement]) -> str:
    """Replace spans left to right; an overlapping span extends the one before it (never leaves a tail behind)."""
    out, position = [], 0
    for r in sorted(replacements, key=lambda r: r.start):
        if r.start < position:
            position = max(position, r.end)
            continue
        out.append(text[position:r.start])
        out.append(r.text)
        position = r.end
    out.append(text[position:])
    return "".join(out)
