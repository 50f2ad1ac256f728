"""Measure the real scanner on labelled messages: per-label precision, recall, F1 and the false-alarm rate.

Input lines are `{"id", "text", "spans": [{"start", "end", "label"}]}` (see slack_pii/tools/corpus.py for the label set).

How a figure is counted (the rules are here so that two runs are comparable):

- **Detection.** A finding counts as a detection when the policy would act on it if its category's action were
  not `allow`: its score is at or above its policy threshold and no allow-list (values, patterns, fingerprints,
  placeholders) let it through. So PERSON and LOCATION, which the shipped policy *allows*, are still measured.
  Below-threshold findings are not detections.
- **Label.** A detection's label is `LABEL_OF[entity_type]`; any other credential-category entity is `SECRET`;
  anything else keeps its entity type as its label (and, having no gold spans, counts as a false positive).
- **Matching.** Span overlap: a gold span is *caught* when a detection with the same label overlaps it by at
  least one character; a detection is *correct* when it overlaps a gold span with the same label. Boundaries
  do not have to agree (`password=hunter2` vs `hunter2` both count), and one gold address matched by two
  detections counts once for recall and twice for precision.
- **Precision** = correct detections / detections; **recall** = caught gold spans / gold spans, per label and
  micro-averaged overall. **False alarm** = the fraction of messages with no gold span whose verdict under the
  real policy is not `allow` (what a user would notice: a warning, a redaction or a block for nothing).

Misses and false alarms are reported as rule id + a snippet with every labelled or detected span masked as
`⟦LABEL⟧`: the values themselves are never printed.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slack_pii.detect.findings import Finding
from slack_pii.detect.policy import Policy, Scope, decide

# Engine entity -> evaluation label. Every credential entity is a SECRET (and so is any credential-category
# entity a team adds later, see `label_of`); street addresses and NER places are LOCATION; routing numbers
# count with bank accounts.
LABEL_OF: dict[str, str] = {
    **{entity: "SECRET" for entity in (
        "SLACK_TOKEN", "SLACK_WEBHOOK_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN",
        "GITLAB_TOKEN", "STRIPE_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "NPM_TOKEN",
        "TWILIO_API_KEY", "SENDGRID_API_KEY", "JWT", "PRIVATE_KEY", "PASSWORD", "GENERIC_SECRET")},
    "STREET_ADDRESS": "LOCATION", "LOCATION": "LOCATION",
    "US_BANK_NUMBER": "US_BANK_NUMBER", "ABA_ROUTING_NUMBER": "US_BANK_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD", "US_SSN": "US_SSN", "PHONE_NUMBER": "PHONE_NUMBER",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS", "IBAN_CODE": "IBAN_CODE", "IP_ADDRESS": "IP_ADDRESS", "PERSON": "PERSON",
    "DATE_OF_BIRTH": "DATE_OF_BIRTH",
}
CHUNK = 64
SNIPPET_CONTEXT = 24
TOP = 8


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def label_of(finding: Finding) -> str:
    return LABEL_OF.get(finding.entity_type) or ("SECRET" if finding.category == "credential" else finding.entity_type)


@dataclass
class Counts:
    detections: int = 0
    correct: int = 0
    gold: int = 0
    caught: int = 0

    def figures(self) -> dict:
        """None where a figure is undefined: precision with no detections, recall with no gold spans."""
        precision = self.correct / self.detections if self.detections else None
        recall = self.caught / self.gold if self.gold else None
        f1 = None
        if precision is not None and recall is not None:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": _round(precision), "recall": _round(recall), "f1": _round(f1)}


@dataclass
class Report:
    """The figures for one config on one labelled file."""

    config: str
    per_label: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    messages: int = 0
    clean: int = 0
    clean_flagged: int = 0
    misses: Counter = field(default_factory=Counter)
    miss_examples: dict = field(default_factory=dict)
    false_alarms: Counter = field(default_factory=Counter)
    false_alarm_examples: dict = field(default_factory=dict)

    def overall(self) -> dict:
        total = Counts()
        for counts in self.per_label.values():
            total.detections += counts.detections
            total.correct += counts.correct
            total.gold += counts.gold
            total.caught += counts.caught
        figures = total.figures()
        figures["false_alarm"] = round(self.clean_flagged / self.clean, 4) if self.clean else 0.0
        return figures

    def to_dict(self) -> dict:
        labels = sorted(self.per_label, key=_label_order)
        return {
            "config": self.config,
            "messages": self.messages,
            "clean_messages": self.clean,
            "clean_messages_flagged": self.clean_flagged,
            "overall": self.overall(),
            "per_entity": {label: {**self.per_label[label].figures(), "support": self.per_label[label].gold,
                                   "detections": self.per_label[label].detections} for label in labels},
            "worst_misses": [{"label": label, "why": why, "count": n, "example": self.miss_examples[(label, why)]}
                             for (label, why), n in self.misses.most_common(TOP)],
            "worst_false_alarms": [{"rule": rule, "label": label, "count": n,
                                    "example": self.false_alarm_examples[(rule, label)]}
                                   for (rule, label), n in self.false_alarms.most_common(TOP)],
        }


def _label_order(label: str) -> tuple[int, str]:
    from slack_pii.tools.corpus import LABELS

    return (LABELS.index(label) if label in LABELS else len(LABELS), label)


def read_labels(path: Path) -> list[dict]:
    """Labelled messages; a malformed line is an error naming its line number (never its content)."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                text, spans = record["text"], record.get("spans") or []
                if not isinstance(text, str) or not all(0 <= s["start"] < s["end"] <= len(text) for s in spans):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path}: line {number}: expected {{\"id\", \"text\", \"spans\": [{{\"start\", "
                                 f"\"end\", \"label\"}}]}} with spans inside the text") from None
            records.append(record)
    return records


def detection_policy(policy: Policy) -> Policy:
    """The same thresholds and allow-lists, but every action `warn`: what the detector found, whatever the action."""
    return dataclasses.replace(policy, base=Scope({}, {}, dict(policy.base.thresholds)), default_action="warn",
                               channels={})


def evaluate(scanner, records: Sequence[dict], *, config: str = "current",
             progress: Callable[[int], None] | None = None) -> Report:
    """Scan every record with the real scanner (batched) and count against the gold spans."""
    report = Report(config)
    probe = detection_policy(scanner.policy)
    context = scanner.context()
    for offset in range(0, len(records), CHUNK):
        chunk = records[offset:offset + CHUNK]
        outcomes = scanner.scan_many([r["text"] for r in chunk])
        for record, outcome in zip(chunk, outcomes):
            detected = [a.finding for a in decide(outcome.findings, probe, context).actions if a.action != "allow"]
            _score(report, record, detected, outcome.findings, outcome.verdict)
        if progress:
            progress(len(chunk))
    return report


def _score(report: Report, record: dict, detected: list[Finding], everything: list[Finding], verdict: str) -> None:
    text, gold = record["text"], record.get("spans") or []
    report.messages += 1
    if not gold:
        report.clean += 1
        report.clean_flagged += verdict != "allow"
    masks = [(s["start"], s["end"], s["label"]) for s in gold] + [(f.start, f.end, label_of(f)) for f in everything]
    for span in gold:
        counts = report.per_label[span["label"]]
        counts.gold += 1
        if any(_overlaps(f, span) and label_of(f) == span["label"] for f in detected):
            counts.caught += 1
            continue
        why = _why_missed(span, detected, everything)
        key = (span["label"], why)
        report.misses[key] += 1
        report.miss_examples.setdefault(key, masked_snippet(text, span["start"], span["end"], masks))
    for finding in detected:
        label = label_of(finding)
        counts = report.per_label[label]
        counts.detections += 1
        if any(_overlaps(finding, span) and span["label"] == label for span in gold):
            counts.correct += 1
            continue
        other = next((s["label"] for s in gold if _overlaps(finding, s)), None)
        key = (finding.rule, label + (f" (gold: {other})" if other else ""))
        report.false_alarms[key] += 1
        report.false_alarm_examples.setdefault(key, masked_snippet(text, finding.start, finding.end, masks))


def _overlaps(finding: Finding, span: dict) -> bool:
    return finding.start < span["end"] and span["start"] < finding.end


def _why_missed(span: dict, detected: list[Finding], everything: list[Finding]) -> str:
    """Rule id and reason for a miss: found as another label, found below threshold / allow-listed, or nothing."""
    for finding in detected:
        if _overlaps(finding, span):
            return f"{finding.rule}: detected as {label_of(finding)}"
    for finding in everything:
        if _overlaps(finding, span):
            return f"{finding.rule}: below threshold or allow-listed ({finding.score:.2f})"
    return "no finding"


def masked_snippet(text: str, start: int, end: int, masks: Iterable[tuple[int, int, str]]) -> str:
    """`context ⟦LABEL⟧ context`: every labelled or detected span in the window is masked, the values never shown."""
    lo, hi = max(0, start - SNIPPET_CONTEXT), min(len(text), end + SNIPPET_CONTEXT)
    spans = sorted((max(lo, s), min(hi, e), label) for s, e, label in masks if s < hi and lo < e)
    pieces, position = [], lo
    for s, e, label in spans:
        if e <= position:
            continue
        s = max(s, position)
        pieces += [text[position:s], f"⟦{label}⟧"]
        position = e
    pieces.append(text[position:hi])
    snippet = "".join(pieces).replace("\n", "⏎")
    return ("…" if lo > 0 else "") + snippet + ("…" if hi < len(text) else "")


def compare(current: dict, candidate: dict) -> dict:
    """Candidate minus current, for the overall figures and each label."""
    delta = {"overall": {k: _minus(candidate["overall"][k], current["overall"][k]) for k in current["overall"]},
             "per_entity": {}}
    for label in dict.fromkeys(list(current["per_entity"]) + list(candidate["per_entity"])):
        a = current["per_entity"].get(label, {})
        b = candidate["per_entity"].get(label, {})
        delta["per_entity"][label] = {k: _minus(b.get(k), a.get(k)) for k in ("precision", "recall", "f1")}
    return delta


def _minus(b: float | None, a: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 4)
