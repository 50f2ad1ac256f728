"""Measure the real scanner on labelled messages the way ../LABELLING.md judges a detector.

Input lines are `{"id", "text", "spans": [{"start", "end", "label"}]}`; a path may be one file or a folder of
`*.jsonl` files (a labelled set). How a figure is counted (the rules are here so that two runs are comparable):

- **Detection.** A finding counts as a detection when the policy would act on it if its category's action were
  not `allow`: its score is at or above its policy threshold and no allow-list (values, patterns, fingerprints,
  placeholders) let it through. So PERSON and LOCATION, which the shipped policy may *allow*, are still measured.
- **Label.** A detection's label is `LABEL_OF[entity_type]`; any other credential-category entity is `SECRET`;
  anything else keeps its entity type.
- **Recall** (per label): a labelled value is *found* when detections of the same label cover at least half of its
  characters. **Precision**: a detection that touches no labelled value (of any label) is a false positive.
- **Nagging**: the share of clean messages (no labelled value) whose verdict under the real policy is not `allow`:
  what a user would notice (a warning, a redaction or a block for nothing).
- **Leak**: the share of labelled values of which any 8-character window (the whole value when shorter) is still
  present in the redacted output that would reach Slack, unless the message is blocked (a block leaks nothing).
  `high_severity_leak` is that share over SECRET, CREDIT_CARD, US_SSN, IBAN_CODE, US_BANK_NUMBER, US_PASSPORT and
  US_DRIVER_LICENSE values.
- **Stock Presidio** (`--stock`) is scored by the same rules: its entity types are mapped onto our labels
  (`tools/stock.py`), every finding at Presidio's default threshold is redacted with its `replace` operator, and a
  clean message with any finding counts as nagged.

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
from slack_pii.tools.stock import STOCK_TO_LABEL

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
    "DATE_OF_BIRTH": "DATE_OF_BIRTH", "US_PASSPORT": "US_PASSPORT", "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
}
HIGH_SEVERITY = ("SECRET", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "US_BANK_NUMBER", "US_PASSPORT", "US_DRIVER_LICENSE")
NER_LABELS = ("PERSON", "LOCATION")
LEAK_WINDOW = 8
MIN_COVERAGE = 0.5
CHUNK = 64
SNIPPET_CONTEXT = 24
TOP = 8


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _ratio(part: int, whole: int) -> float | None:
    return _round(part / whole) if whole else None


def label_of(finding: Finding) -> str:
    return LABEL_OF.get(finding.entity_type) or ("SECRET" if finding.category == "credential" else finding.entity_type)


@dataclass
class Counts:
    gold: int = 0
    caught: int = 0
    leaked: int = 0
    detections: int = 0
    correct: int = 0

    def add(self, other: Counts) -> None:
        for name in ("gold", "caught", "leaked", "detections", "correct"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def figures(self) -> dict:
        """None where a figure is undefined: precision with no detections, recall and leak with no labelled values."""
        precision, recall = _ratio(self.correct, self.detections), _ratio(self.caught, self.gold)
        f1 = None
        if precision is not None and recall is not None:
            f1 = _round(2 * precision * recall / (precision + recall)) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "leak": _ratio(self.leaked, self.gold),
                "support": self.gold, "detections": self.detections}


@dataclass
class Report:
    """The figures for one detector (ours under one config, or stock Presidio) on one labelled set."""

    config: str
    per_label: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    messages: int = 0
    clean: int = 0
    clean_nagged: int = 0
    misses: Counter = field(default_factory=Counter)
    miss_examples: dict = field(default_factory=dict)
    false_alarms: Counter = field(default_factory=Counter)
    false_alarm_examples: dict = field(default_factory=dict)

    def _total(self, labels: Iterable[str] | None = None) -> Counts:
        total = Counts()
        for label, counts in self.per_label.items():
            if labels is None or label in labels:
                total.add(counts)
        return total

    def overall(self) -> dict:
        total = self._total()
        figures = {k: v for k, v in total.figures().items() if k in ("precision", "recall", "f1")}
        non_ner = [label for label in self.per_label if label not in NER_LABELS]
        high = self._total(HIGH_SEVERITY)
        figures.update({
            "recall_non_ner": self._total(non_ner).figures()["recall"],
            "nagging": _ratio(self.clean_nagged, self.clean) or 0.0,
            "high_severity_leak": _ratio(high.leaked, high.gold),
            "high_severity_leaked": high.leaked, "high_severity_values": high.gold,
        })
        return figures

    def to_dict(self) -> dict:
        labels = sorted(self.per_label, key=_label_order)
        return {
            "config": self.config,
            "messages": self.messages,
            "clean_messages": self.clean,
            "clean_messages_nagged": self.clean_nagged,
            "overall": self.overall(),
            "per_entity": {label: self.per_label[label].figures() for label in labels},
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
    """Labelled messages from a file, or from every *.jsonl in a folder (sorted); a malformed line is an error
    naming its file and line number (never its content)."""
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"{path}: no *.jsonl files in this folder")
    records = []
    for file in files:
        with open(file, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    text, spans = record["text"], record.get("spans") or []
                    if not isinstance(text, str) or not all(0 <= s["start"] < s["end"] <= len(text) for s in spans):
                        raise ValueError
                except (ValueError, KeyError, TypeError):
                    raise ValueError(f"{file}: line {number}: expected {{\"id\", \"text\", \"spans\": [{{\"start\", "
                                     f"\"end\", \"label\"}}]}} with spans inside the text") from None
                records.append(record)
    return records


def detection_policy(policy: Policy) -> Policy:
    """The same thresholds and allow-lists, but every action `warn`: what the detector found, whatever the action."""
    return dataclasses.replace(policy, base=Scope({}, {}, dict(policy.base.thresholds)), default_action="warn",
                               channels={})


def evaluate(scanner, records: Sequence[dict], *, config: str = "current",
             progress: Callable[[int], None] | None = None) -> Report:
    """Scan every record with the real scanner (batched) and count against the labelled values."""
    report = Report(config)
    probe = detection_policy(scanner.policy)
    context = scanner.context()
    for offset in range(0, len(records), CHUNK):
        chunk = records[offset:offset + CHUNK]
        outcomes = scanner.scan_many([r["text"] for r in chunk])
        for record, outcome in zip(chunk, outcomes):
            detected = [a.finding for a in decide(outcome.findings, probe, context).actions if a.action != "allow"]
            spans = [(f.start, f.end, label_of(f)) for f in detected]
            everything = [(f.start, f.end, label_of(f), f.rule, f.score) for f in outcome.findings]
            shown = None if outcome.verdict == "block" else outcome.redacted
            _score(report, record, spans, everything, shown, nagged=outcome.verdict != "allow")
        if progress:
            progress(len(chunk))
    return report


def evaluate_stock(stock, records: Sequence[dict], *, progress: Callable[[int], None] | None = None) -> Report:
    """The same counting for stock Presidio: every finding is a detection, and every one is redacted."""
    report = Report("stock Presidio")
    for offset in range(0, len(records), CHUNK):
        chunk = records[offset:offset + CHUNK]
        texts = [r["text"] for r in chunk]
        for record, results in zip(chunk, stock.analyze(texts)):
            spans = [(r.start, r.end, STOCK_TO_LABEL.get(r.entity_type, r.entity_type)) for r in results]
            everything = [(s, e, label, f"stock {label}", 1.0) for s, e, label in spans]
            _score(report, record, spans, everything, stock.redact(record["text"], results), nagged=bool(results))
        if progress:
            progress(len(chunk))
    return report


def _score(report: Report, record: dict, detected: list[tuple[int, int, str]], everything: list[tuple],
           shown: str | None, *, nagged: bool) -> None:
    """Count one message. `detected`: (start, end, label); `everything`: (start, end, label, rule, score) for every
    finding, detections or not; `shown`: the text that would reach Slack (None when the message is blocked)."""
    text, gold = record["text"], record.get("spans") or []
    report.messages += 1
    if not gold:
        report.clean += 1
        report.clean_nagged += nagged
    masks = [(s["start"], s["end"], s["label"]) for s in gold] + [(s, e, label) for s, e, label, *_ in everything]
    for span in gold:
        counts = report.per_label[span["label"]]
        counts.gold += 1
        value = text[span["start"]:span["end"]]
        counts.leaked += shown is not None and is_readable(value, shown)
        same_label = [(s, e) for s, e, label in detected if label == span["label"]]
        if coverage(span["start"], span["end"], same_label) >= MIN_COVERAGE:
            counts.caught += 1
            continue
        key = (span["label"], _why_missed(span, detected, everything))
        report.misses[key] += 1
        report.miss_examples.setdefault(key, masked_snippet(text, span["start"], span["end"], masks))
    for start, end, label in detected:
        counts = report.per_label[label]
        counts.detections += 1
        if any(start < s["end"] and s["start"] < end for s in gold):
            counts.correct += 1
            continue
        rule = next((r for s, e, lab, r, _ in everything if (s, e, lab) == (start, end, label)), label)
        key = (rule, label)
        report.false_alarms[key] += 1
        report.false_alarm_examples.setdefault(key, masked_snippet(text, start, end, masks))


def coverage(start: int, end: int, spans: Iterable[tuple[int, int]]) -> float:
    """Share of [start, end) covered by the union of `spans`."""
    covered = [False] * (end - start)
    for s, e in spans:
        for index in range(max(s, start), min(e, end)):
            covered[index - start] = True
    return sum(covered) / max(1, end - start)


def is_readable(value: str, shown: str) -> bool:
    """Any LEAK_WINDOW-character window of `value` (the whole value when shorter) still present in `shown`."""
    if len(value) <= LEAK_WINDOW:
        return value in shown
    return any(value[i:i + LEAK_WINDOW] in shown for i in range(len(value) - LEAK_WINDOW + 1))


def _why_missed(span: dict, detected: list[tuple[int, int, str]], everything: list[tuple]) -> str:
    """Rule id and reason for a miss: found as another label, covering too little, below threshold, or nothing."""
    def touches(s: int, e: int) -> bool:
        return s < span["end"] and span["start"] < e

    for s, e, label, rule, _ in everything:
        if touches(s, e) and (s, e, label) in detected:
            return f"{rule}: detected as {label}" if label != span["label"] else f"{rule}: covers under half"
    for s, e, label, rule, score in everything:
        if touches(s, e):
            return f"{rule}: below threshold or allow-listed ({score:.2f})"
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
        delta["per_entity"][label] = {k: _minus(b.get(k), a.get(k)) for k in ("precision", "recall", "f1", "leak")}
    return delta


def _minus(b: float | None, a: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 4)
