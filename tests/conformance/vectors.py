"""Peer test vectors (Presidio, gitleaks, detect-secrets) mapped onto our categories, and how we score them.

Everything that decides whether a row counts lives here, so the README, the test and `results.md` agree:
which source entities we claim (`CATEGORY_OF` / `OUT_OF_SCOPE`), which rows are soft (reported, not
asserted), what "caught" and "flagged" mean, and the per-source table.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SOURCES = ("presidio", "presidio_intl", "gitleaks", "gitleaks_generated", "detect_secrets")
MIN_CAUGHT, MAX_FLAGGED = 0.95, 0.05
# A finding covers an expected span when it overlaps at least this share of the span's characters.
MIN_COVERAGE = 0.8
LAST_REPORTS: dict = {}  # filled by the test run, printed by conftest's terminal summary

# Source entity -> our category. Every gitleaks rule id is a credential (see `category_of`).
CATEGORY_OF = {
    # Presidio
    "CREDIT_CARD": "financial", "IBAN_CODE": "financial", "US_BANK_NUMBER": "financial",
    "ABA_ROUTING_NUMBER": "financial",
    "US_SSN": "government_id", "US_ITIN": "government_id", "US_PASSPORT": "government_id",
    "US_DRIVER_LICENSE": "government_id",
    "EMAIL_ADDRESS": "contact", "PHONE_NUMBER": "contact",
    "IP_ADDRESS": "network",
    "PERSON": "person", "LOCATION": "location",
    # detect-secrets: every plugin is a credential detector except the public-IP one
    "IPPublicDetector": "network",
}
DETECT_SECRETS_ALL = "*all default detect-secrets plugins*"

# Entities the peers test that we do not claim, with the reason (mirrored in README.md).
OUT_OF_SCOPE = {
    "URL": "a link is not sensitive by itself; credentials inside URLs are covered by credential rules",
    "CRYPTO": "wallet addresses are public by design; not a leak we act on",
    "MAC_ADDRESS": "hardware ids in logs, not personal data in chat; too noisy to act on",
    "DATE_TIME": "plain dates are everywhere in chat; we only claim dates of birth (date + DOB context)",
    "US_MBI": "Medicare beneficiary ids: not claimed yet (no rule)",
    "US_NPI": "provider ids are public registry numbers",
    "UK_NHS": "country-specific id: not claimed yet (no rule)",
    "MEDICAL_LICENSE": "DEA numbers are professional registry ids; not claimed",
    "NRP": "nationality/religion/politics from NER is too noisy in chat; not claimed",
    # detect-secrets plugins that flag any unnamed string by entropy alone
    "HexHighEntropyString": "unnamed high-entropy strings: commit SHAs, checksums and ids in chat look the same; "
                            "we flag high-entropy values only when a secret-like name is assigned to them",
    "Base64HighEntropyString": "as HexHighEntropyString",
}
INTL_NOTE = "country-specific id not enabled in the policy's country_recognizers (Presidio ships them disabled too)"
# Entities of the Presidio country recognizers the scanner runs (policy `country_recognizers`): in scope, strictly.
ENABLED_COUNTRY: set[str] = set()


def category_of(source: str, entity: str) -> str | None:
    """Our category for a source's entity name, or None when we do not claim it."""
    if source.startswith("gitleaks"):
        return "credential"
    if source == "detect_secrets":
        return None if entity in OUT_OF_SCOPE else CATEGORY_OF.get(entity, "credential")
    if source == "presidio_intl":
        return "government_id" if entity in ENABLED_COUNTRY else None
    return CATEGORY_OF.get(entity) or ("government_id" if entity in ENABLED_COUNTRY else None)


@dataclass(frozen=True)
class Row:
    source: str  # file stem, e.g. "gitleaks"
    id: str  # the row's `source` field: unique, names repo@commit:path#case
    text: str
    expect: tuple[dict, ...]
    negative_for: tuple[str, ...]
    meta: dict = field(hash=False, compare=False)

    @property
    def negative(self) -> bool:
        return not self.expect


def load_rows(source: str) -> list[Row]:
    rows = []
    with (DATA / f"{source}.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            raw = json.loads(line)
            rows.append(Row(source, raw["source"], raw["text"], tuple(raw["expect"]),
                            tuple(raw.get("negative_for") or ()), raw.get("meta") or {}))
    return rows


def load_disagreements() -> dict[str, str]:
    """Row id -> why we deliberately disagree with the source's label (disagreements.yaml)."""
    data = yaml.safe_load((HERE / "disagreements.yaml").read_text(encoding="utf-8")) or {}
    return {row_id: item["reason"] for item in data.get("disagreements") or [] for row_id in item["ids"]}


def load_conflicts(rows_by_source: dict[str, list[Row]]) -> dict[str, str]:
    """Negative rows that another tool (or another rule of the same tool) labels a secret: reported, not asserted.

    Two kinds: the peer-vectors analysis (`cross_source_conflicts.jsonl`, checked by running the other tool),
    and gitleaks rule-level negatives whose text holds a value gitleaks itself labels a secret under another
    rule (e.g. a Cloudflare API key listed as a negative of the Cloudflare *global* key rule). Our negatives
    are per category, so such a row cannot pass for any credential detector.
    """
    conflicts = {}
    with (DATA / "cross_source_conflicts.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            raw = json.loads(line)
            tools = ", ".join(raw["other_tool_fires"])
            conflicts[raw["vector_source"]] = f"cross-source conflict: {raw['other_tool']} fires ({tools})"
    for source, family in (("gitleaks", ("gitleaks", "gitleaks_generated")), ("detect_secrets", ("detect_secrets",))):
        secrets = [(item["entity"], row.text[item["start"]:item["end"]])
                   for name in family for row in rows_by_source.get(name, []) for item in row.expect]
        for row in rows_by_source.get(source, []):
            if row.negative and row.id not in conflicts:
                other = sorted({entity for entity, value in secrets if len(value) >= 16 and entity not in
                                row.negative_for and category_of(source, entity) == "credential" and value in row.text})
                if other:
                    conflicts[row.id] = f"the same source labels this value a secret under {', '.join(other)}"
    return conflicts


def _span_max_score(row: Row, index: int) -> float | None:
    """The highest score the source asserts for span `index` (None when it asserts none)."""
    scores = row.meta.get("expected_score")
    if isinstance(scores, list) and scores:
        scores = scores[index] if len(scores) == len(row.expect) else scores
    values: list[float] = []

    def collect(item):
        if item == "max":
            values.append(1.0)
        elif isinstance(item, (int, float)):
            values.append(float(item))
        elif isinstance(item, list):
            for sub in item:
                collect(sub)

    collect(scores)
    values = [v for v in values if v >= 0]
    return max(values) if values else None


def soft_reason(row: Row, threshold: float, index: int | None = None) -> str | None:
    """Why a row (or one of its spans) is reported but not asserted, per the peer-vectors README."""
    meta = row.meta
    if meta.get("requires_config"):
        return "needs a non-default recognizer configuration in the source"
    if meta.get("ner_engine") not in (None, "spacy"):
        return f"{meta['ner_engine']} NER case (we run spaCy)"
    if meta.get("types_present_only"):
        return "source asserts entity types only, not spans"
    if row.source == "detect_secrets" and "file_extensions" in meta and None not in meta["file_extensions"]:
        return "KeywordDetector case asserted only for code file types, not for plain text"
    if index is not None:
        best = _span_max_score(row, index)
        if best is not None and best < threshold:
            return f"source asserts a weak score ({best:.2f} < our threshold {threshold:.2f})"
    return None


@dataclass
class Case:
    """One scored unit: an expected span of a positive row, or a whole negative row."""

    row: Row
    kind: str  # "positive" | "negative"
    category: str | None
    entity: str
    span: tuple[int, int] | None = None
    status: str = "in_scope"  # in_scope | soft | out_of_scope | disagreement
    note: str = ""
    ok: bool | None = None


def cases_for(row: Row, threshold: float, disagreements: dict[str, str], conflicts: dict[str, str]) -> list[Case]:
    cases = []
    if row.negative:
        for entity in row.negative_for or ("?",):
            category = "credential" if entity == DETECT_SECRETS_ALL else category_of(row.source, entity)
            cases.append(Case(row, "negative", category, entity))
    else:
        for index, item in enumerate(row.expect):
            case = Case(row, "positive", category_of(row.source, item["entity"]), item["entity"],
                        (item["start"], item["end"]))
            case.note = soft_reason(row, threshold, index) or ""
            cases.append(case)
    for case in cases:
        if case.category is None:
            case.status = "out_of_scope"
            case.note = INTL_NOTE if row.source == "presidio_intl" else OUT_OF_SCOPE.get(case.entity, "not claimed")
        elif row.id in disagreements:
            case.status, case.note = "disagreement", disagreements[row.id]
        elif case.kind == "negative" and row.id in conflicts:
            case.status, case.note = "soft", conflicts[row.id]
        elif case.kind == "negative" and (reason := soft_reason(row, threshold)):
            case.status, case.note = "soft", reason
        elif case.note:
            case.status = "soft"
    return cases


def conformance_policy(policy):
    """The shipped policy's thresholds with every category acted on and no value allow-lists.

    PERSON and LOCATION ship as `allow` and loopback IPs are allow-listed: that is what a deployment does with
    a detection, not whether we detect. Placeholder handling stays (it lives in the recognizers).
    """
    from slack_pii.detect.policy import Scope
    from slack_pii.detect.rules import CATEGORIES

    base = Scope(categories={c: "redact" for c in CATEGORIES}, entities={}, thresholds=dict(policy.base.thresholds))
    return dataclasses.replace(policy, base=base, channels={}, allow_values=frozenset(), allow_patterns=(),
                               allow_fingerprints=frozenset())


def detected(outcome, category: str) -> list[tuple[int, int]]:
    """Spans the conformance policy acts on, for one category (all findings of a plain-text scan)."""
    return [(a.finding.start, a.finding.end) for a in outcome.decision.actions
            if a.action != "allow" and a.finding.category == category]


def as_slack_text(text: str) -> tuple[str, list[int]]:
    """The text as a Slack client sends it (& < > escaped), and where each original offset lands in it.

    A raw `<` only ever appears in Slack text as its own markup (`<@U1>`, `<https://…|label>`), so a vector
    such as `<snykToken>…</snykToken>` is fed the way a user's message would arrive: `&lt;snykToken&gt;`.
    """
    escaped, offsets = [], []
    position = 0
    for char in text:
        offsets.append(position)
        piece = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}.get(char, char)
        escaped.append(piece)
        position += len(piece)
    offsets.append(position)
    return "".join(escaped), offsets


def coverage(span: tuple[int, int], spans: Sequence[tuple[int, int]]) -> float:
    start, end = span
    covered = set()
    for s, e in spans:
        covered.update(range(max(s, start), min(e, end)))
    return len(covered) / max(1, end - start)


def judge(case: Case, outcome, offsets: list[int]) -> None:
    """Positive: findings of the mapped category cover >= 80 % of the span. Negative: none of that category."""
    spans = detected(outcome, case.category) if case.category else []
    if case.kind == "positive":
        span = (offsets[case.span[0]], offsets[case.span[1]])
        case.ok = coverage(span, spans) >= MIN_COVERAGE
    else:
        case.ok = not spans


@dataclass
class SourceReport:
    source: str
    cases: list[Case]

    def _count(self, kind: str, status: str, ok: bool | None = None) -> int:
        return sum(1 for c in self.cases if c.kind == kind and c.status == status and (ok is None or c.ok is ok))

    @property
    def positives(self) -> int:
        return self._count("positive", "in_scope")

    @property
    def caught(self) -> int:
        return self._count("positive", "in_scope", True)

    @property
    def negatives(self) -> int:
        return self._count("negative", "in_scope")

    @property
    def flagged(self) -> int:
        return self._count("negative", "in_scope", False)

    @property
    def caught_rate(self) -> float:
        return self.caught / self.positives if self.positives else 1.0

    @property
    def flagged_rate(self) -> float:
        return self.flagged / self.negatives if self.negatives else 0.0

    def soft_line(self) -> str:
        pos = self._count("positive", "soft")
        neg = self._count("negative", "soft")
        return (f"{self._count('positive', 'soft', True)}/{pos} caught, "
                f"{self._count('negative', 'soft', False)}/{neg} flagged")

    def failures(self) -> list[Case]:
        return [c for c in self.cases if c.status == "in_scope" and not c.ok]


def evaluate(scanner, sources: Sequence[str] = SOURCES) -> dict[str, SourceReport]:
    """Scan every row once with the conformance policy and judge every case."""
    from slack_pii.detect.redact import Redactor
    from slack_pii.detect.scanner import Scanner

    ENABLED_COUNTRY.clear()
    ENABLED_COUNTRY.update(scanner.engine.country_entities)
    policy = conformance_policy(scanner.policy)
    measuring = Scanner(scanner.engine, policy, Redactor(policy, scanner.fingerprint_key),
                        fingerprint_key=scanner.fingerprint_key)
    threshold = policy.base.thresholds.get("default", 0.5)
    disagreements = load_disagreements()
    rows_by_source = {source: load_rows(source) for source in SOURCES}
    conflicts = load_conflicts(rows_by_source)
    reports = {}
    for source in sources:
        rows = rows_by_source[source]
        slack_texts = [as_slack_text(row.text) for row in rows]
        outcomes = measuring.scan_many([text for text, _ in slack_texts])
        cases = []
        for row, outcome, (_, offsets) in zip(rows, outcomes, slack_texts):
            for case in cases_for(row, threshold, disagreements, conflicts):
                if case.status != "out_of_scope":
                    judge(case, outcome, offsets)
                cases.append(case)
        reports[source] = SourceReport(source, cases)
    return reports


def _rate(count: int, total: int) -> str:
    return f"{count / total:.1%}" if total else "–"


def render(reports: dict[str, SourceReport]) -> str:
    """The per-source table (Markdown), plus soft rows, disagreements and out-of-scope counts."""
    lines = [
        "| source | in-scope positives | caught | in-scope negatives | flagged | soft (reported only) | disagreements "
        "| counting disagreements as failures | out of scope |",
        "|---|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for report in reports.values():
        disagreements = sum(1 for c in report.cases if c.status == "disagreement")
        out = sum(1 for c in report.cases if c.status == "out_of_scope")
        pos = [c for c in report.cases if c.kind == "positive" and c.status in ("in_scope", "disagreement")]
        neg = [c for c in report.cases if c.kind == "negative" and c.status in ("in_scope", "disagreement")]
        strict = (f"{sum(1 for c in pos if c.ok) / len(pos):.1%} caught, " if pos else "– caught, ") + \
            (f"{sum(1 for c in neg if not c.ok) / len(neg):.1%} flagged" if neg else "– flagged")
        lines.append(
            f"| {report.source} | {report.positives} | {report.caught} ({_rate(report.caught, report.positives)}) | "
            f"{report.negatives} | {report.flagged} ({_rate(report.flagged, report.negatives)}) | {report.soft_line()} | "
            f"{disagreements} | {strict} | {out} |")
    return "\n".join(lines)


def render_results(reports: dict[str, SourceReport]) -> str:
    """results.md: the table, then every disagreement and soft row with its reason (no values beyond row ids)."""
    lines = ["# Conformance results", "",
             "Generated by `tests/conformance/test_conformance.py`; see README.md for what the columns mean.", "",
             render(reports), "", "## Deliberate disagreements (excluded from the rates)", ""]
    by_reason: dict[str, list[Case]] = {}
    for report in reports.values():
        for case in report.cases:
            if case.status == "disagreement":
                by_reason.setdefault(case.note, []).append(case)
    for reason, cases in by_reason.items():
        agree = sum(1 for c in cases if c.ok)
        lines.append(f"- **{len(cases)} rows** ({agree} of them now pass anyway): {reason}")
    lines += ["", "## Soft rows (reported, not asserted)", ""]
    soft: dict[tuple[str, str], list[Case]] = {}
    for report in reports.values():
        for case in report.cases:
            if case.status == "soft":
                key = (report.source, case.kind,
                       case.note.split(":")[0] if case.note.startswith("cross-source") else case.note)
                soft.setdefault(key, []).append(case)
    for (source, kind, note), cases in sorted(soft.items()):
        passed = sum(1 for c in cases if c.ok)
        lines.append(f"- {source}: {len(cases)} {kind}s, {passed} pass our rule: {note}")
    lines += ["", "## Out of scope", ""]
    out: dict[str, int] = {}
    for report in reports.values():
        for case in report.cases:
            if case.status == "out_of_scope":
                out[case.entity if report.source != "presidio_intl" else "presidio_intl (all)"] = \
                    out.get(case.entity if report.source != "presidio_intl" else "presidio_intl (all)", 0) + 1
    for entity, count in sorted(out.items()):
        lines.append(f"- {entity}: {count}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m tests.conformance.vectors > tests/conformance/results.md
    from slack_pii.config import Settings
    from slack_pii.detect.scanner import build_scanner

    print(render_results(evaluate(build_scanner(Settings(ner=True)))), end="")
