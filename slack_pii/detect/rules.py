"""Turn the declarative YAML rules into one compiled RuleSet.

A rule is: id, entity, category, patterns (name, regex, score), keywords (gate), context (boost), validator,
min_entropy, allow (regexes on the value), and examples that the rule must pass. Matching is cheap before
expensive: one multi-pattern pass (hyperscan, in prefilter mode) tells which rules can match a text at all,
then only those rules run their Python regexes, validators and context checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import regex
import yaml

from slack_pii.errors import ConfigError, ConfigProblem
from slack_pii.detect.shipped import RECOGNIZERS_DIR
from slack_pii.detect.validators import VALIDATORS, shannon_entropy

DEFAULT_RULES_DIR = RECOGNIZERS_DIR / "rules"
PLACEHOLDERS_FILE = RECOGNIZERS_DIR / "placeholders.yaml"

CATEGORIES = ("credential", "financial", "government_id", "contact", "network", "personal", "person", "location")
CONTEXT_BOOST = 0.35
MIN_SCORE_WITH_CONTEXT = 0.4
CONTEXT_BEFORE, CONTEXT_AFTER = 64, 32
CONTEXT_NEAR, NEAR_BONUS = 20, 0.1
# NOTE: rule patterns are compiled with the `regex` module for its per-call timeout (Presidio's default is 60 s; a
# chat message must never hold a request for long). A timeout raises TimeoutError and the scan fails closed.
REGEX_TIMEOUT_SECONDS = 0.25

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster start-up

try:  # NOTE: hyperscan is an accelerator, never a requirement: without it every gated rule runs.
    import hyperscan
except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    hyperscan = None


@dataclass(frozen=True)
class Pattern:
    name: str
    regex: re.Pattern
    score: float


@dataclass(frozen=True)
class Rule:
    id: str
    entity: str
    category: str
    patterns: tuple[Pattern, ...]
    source: str
    description: str = ""
    group: int | str = 0
    keywords: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    context_required: bool = False
    validator: str | None = None
    min_entropy: float | None = None
    allow: tuple[re.Pattern, ...] = ()
    placeholders: bool = False
    examples_match: tuple[str, ...] = ()
    examples_no_match: tuple[str, ...] = ()
    context_regex: re.Pattern | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class RuleMatch:
    """A rule's hit in one text; `start`/`end` index that text. The value itself stays with the caller."""

    rule: Rule
    pattern: str
    start: int
    end: int
    score: float
    context_words: tuple[str, ...] = ()


@dataclass(frozen=True)
class AllowHit:
    """A candidate that an allow-list or placeholder rule let through (recorded for explainability)."""

    rule: Rule
    start: int
    end: int
    reason: str


class Placeholders:
    """Values that look like a credential but are documentation, templates or masks (see README)."""

    def __init__(self, data: dict):
        self.values = frozenset(str(v) for v in data.get("values", []))
        self.patterns = tuple(re.compile(p) for p in data.get("patterns", []))
        self.filler = re.compile(data.get("filler_chars", r"[xX*.#0_\-•]"))
        self.filler_ratio = float(data.get("filler_ratio", 0.6))

    def is_placeholder(self, value: str) -> str | None:
        """The reason `value` is a placeholder, or None."""
        if value in self.values:
            return "documented example value"
        for pattern in self.patterns:
            if pattern.search(value):
                return f"placeholder pattern {pattern.pattern!r}"
        tail = value.split("-", 1)[-1] if value[:4].lower().startswith("xox") else value[4:] if len(value) > 12 else value
        if tail and len(self.filler.findall(tail)) / len(tail) >= self.filler_ratio:
            return "mostly filler characters"
        return None


class RuleSet:
    """Every rule, compiled once at start-up, with a single prefilter pass for the whole set."""

    def __init__(self, rules: list[Rule], placeholders: Placeholders, version: str = ""):
        self.rules = rules
        self.placeholders = placeholders
        self.version = version
        self.entities = sorted({r.entity for r in rules})
        self._always: list[Rule] = []
        self._database = None
        self._slot_rule: list[Rule] = []  # hyperscan expression id -> its rule
        self._build_prefilter()

    def _build_prefilter(self) -> None:
        """One hyperscan database: the literal keywords of gated rules, the patterns of ungated ones.

        A gated rule runs when one of its keywords is present (gitleaks' semantics); an ungated rule runs when
        its pattern may match (HS_FLAG_PREFILTER: hyperscan answers a superset, never less). Keywords are
        literals, so the database compiles in well under a second however many credential rules there are.
        """
        if hyperscan is None:
            self._always = list(self.rules)
            return
        # NOTE: no HS_FLAG_UCP: Unicode classes make compiles take minutes. ASCII \w/\b only ever widen the
        # prefilter, and the scan text has Unicode digits and spaces folded to ASCII (slack_text), so a prefilter
        # miss cannot hide a match Python's Unicode-aware regex would find.
        base = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_UTF8
        entries: list[tuple[bytes, int, Rule]] = []
        for rule in self.rules:
            if rule.keywords:
                entries += [(re.escape(k).encode(), base | hyperscan.HS_FLAG_CASELESS, rule) for k in rule.keywords]
                continue
            for pattern in rule.patterns:
                flag = base | hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_ALLOWEMPTY
                flag |= hyperscan.HS_FLAG_CASELESS if pattern.regex.flags & regex.IGNORECASE else 0
                flag |= hyperscan.HS_FLAG_MULTILINE | hyperscan.HS_FLAG_DOTALL  # both only widen the match set
                entries.append((pattern.regex.pattern.encode(), flag, rule))
        try:
            self._database = _compile_database(entries)
        except hyperscan.error:  # some pattern hyperscan cannot take: find it, run that rule unfiltered
            rejected = {id(rule) for expression, flag, rule in entries if not _hyperscan_accepts(expression, flag)}
            self._always = [r for r in self.rules if id(r) in rejected]
            entries = [e for e in entries if id(e[2]) not in rejected]
            self._database = _compile_database(entries) if entries else None
        self._slot_rule = [rule for _, _, rule in entries]

    def candidate_rules(self, text: str) -> list[Rule]:
        """Rules that can match `text`: a keyword of a gated rule is present, or an ungated rule's pattern may match."""
        if self._database is None:
            return self._keyword_gated(text, self.rules)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: no prefilter, every rule (still keyword-gated)
            return self._keyword_gated(text, self.rules)
        hit: set[int] = set()
        slots = self._slot_rule

        def on_match(slot: int, _from: int, _to: int, _flags: int, _ctx: object) -> None:
            hit.add(id(slots[slot]))

        self._database.scan(data, match_event_handler=on_match)
        result = [r for r in self.rules if id(r) in hit]
        if self._always:
            result += self._keyword_gated(text, self._always)
        return result

    @staticmethod
    def _keyword_gated(text: str, rules: Iterable[Rule]) -> list[Rule]:
        lowered = text.lower()
        return [r for r in rules if not r.keywords or any(k in lowered for k in r.keywords)]

    def find(self, text: str, rules: Iterable[Rule] | None = None) -> tuple[list[RuleMatch], list[AllowHit]]:
        """Run rules over `text`: regex, then validator, entropy, allow-lists, placeholders and context."""
        matches: list[RuleMatch] = []
        allowed: list[AllowHit] = []
        lowered = None
        for rule in self.candidate_rules(text) if rules is None else rules:
            if rule.context_required:  # no context word anywhere: no match is possible, skip the regex work
                lowered = lowered if lowered is not None else text.lower()
                if not rule.context_regex.search(lowered):
                    continue
            for pattern in rule.patterns:
                for m in pattern.regex.finditer(text, timeout=REGEX_TIMEOUT_SECONDS):
                    try:
                        start, end = m.span(rule.group)
                    except IndexError:
                        start, end = m.span()
                    if start < 0 or end <= start:
                        continue
                    value = text[start:end]
                    verdict = VALIDATORS[rule.validator](value) if rule.validator else None
                    if verdict is False:
                        continue
                    if rule.min_entropy is not None and shannon_entropy(value) < rule.min_entropy:
                        continue
                    reason = next((f"allow {a.pattern!r}" for a in rule.allow if a.search(value)), None)
                    if reason is None and rule.placeholders:
                        reason = self.placeholders.is_placeholder(value)
                    if reason:
                        allowed.append(AllowHit(rule, start, end, reason))
                        continue
                    score, words = (1.0 if verdict else pattern.score), ()
                    if rule.context_regex is not None:
                        score, words = context_score(text, start, end, score, rule.context_regex)
                        if not words and rule.context_required:
                            continue
                    matches.append(RuleMatch(rule, pattern.name, start, end, score, words))
        return matches, allowed

    def check_examples(self) -> list[ConfigProblem]:
        """Each rule finds its own `match` examples and stays silent on its `no_match` ones."""
        problems = []
        for rule in self.rules:
            for example in rule.examples_match:
                if not any(m.rule is rule for m in self.find(example, [rule])[0]):
                    problems.append(ConfigProblem(rule.source, rule.id, f"example not matched: {_mask(example)}",
                                                  "fix the regex/validator or the example"))
            for example in rule.examples_no_match:
                if any(m.rule is rule for m in self.find(example, [rule])[0]):
                    problems.append(ConfigProblem(rule.source, rule.id, f"no_match example matched: {_mask(example)}",
                                                  "tighten the rule, add an allow entry, or fix the example"))
        return problems


def context_score(text: str, start: int, end: int, score: float, context: re.Pattern) -> tuple[float, tuple[str, ...]]:
    """Raise `score` when context words stand near the match (before or just after it); return the words seen.

    Context only ever boosts. Gating is the job of `keywords` (and of `context_required` for weak shapes).
    """
    window = text[max(0, start - CONTEXT_BEFORE):start] + " " + text[end:end + CONTEXT_AFTER]
    words = tuple(dict.fromkeys(w.lower() for w in context.findall(window)))
    if words:
        score = min(1.0, max(score + CONTEXT_BOOST, MIN_SCORE_WITH_CONTEXT))
        # NOTE: a context word right before the value ("passport 1096..., home 2390 Bank St") outranks one
        # further off, so two weak shapes with different context resolve to the nearer word's entity.
        if context.search(text, max(0, start - CONTEXT_NEAR), start):
            score = min(1.0, score + NEAR_BONUS)
    return score, words


def _mask(example: str) -> str:
    """Examples are fake, but still shown shortened: config output is often pasted into tickets."""
    return example if len(example) <= 24 else example[:20] + "…"


def _compile_database(entries: list[tuple[bytes, int, Rule]]):
    database = hyperscan.Database()
    database.compile(expressions=[e for e, _, _ in entries], ids=list(range(len(entries))), elements=len(entries),
                     flags=[f for _, f, _ in entries])
    return database


def _hyperscan_accepts(expression: bytes, flags: int) -> bool:
    try:
        database = hyperscan.Database()
        database.compile(expressions=[expression], ids=[0], elements=1, flags=[flags])
        return True
    except hyperscan.error:
        return False


def _compile(expression: str, file: str, rule_id: str, problems: list[ConfigProblem]):
    try:
        return regex.compile(expression)
    except regex.error as exc:
        problems.append(ConfigProblem(file, rule_id, f"bad regex {expression!r}: {exc}", "fix the regular expression"))
        return None


def parse_rule(raw: dict, file: str, problems: list[ConfigProblem]) -> Rule | None:
    rule_id = str(raw.get("id") or "")
    if not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", rule_id):
        problems.append(ConfigProblem(file, rule_id or None, "missing or non-kebab-case `id`",
                                      "give every rule a stable kebab-case id"))
        return None
    before = len(problems)
    entity = str(raw.get("entity") or "")
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*", entity):
        problems.append(ConfigProblem(file, rule_id, f"bad `entity` {entity!r}", "use UPPER_SNAKE_CASE, e.g. US_SSN"))
    category = raw.get("category")
    if category not in CATEGORIES:
        problems.append(ConfigProblem(file, rule_id, f"unknown category {category!r}", f"one of {', '.join(CATEGORIES)}"))
    patterns = []
    for index, item in enumerate(raw.get("patterns") or []):
        compiled = _compile(str(item.get("regex", "")), file, rule_id, problems)
        score = float(item.get("score", 0.5))
        if not 0 < score <= 1:
            problems.append(ConfigProblem(file, rule_id, f"pattern {index}: score {score} outside (0, 1]", "use 0.01-1.0"))
        if compiled is not None:
            patterns.append(Pattern(str(item.get("name") or f"{rule_id} #{index}"), compiled, score))
    if not patterns and len(problems) == before:
        problems.append(ConfigProblem(file, rule_id, "no patterns", "add at least one `patterns:` entry"))
    group = raw.get("group", 0)
    for pattern in patterns:
        if isinstance(group, int) and group > pattern.regex.groups or (
            isinstance(group, str) and group not in pattern.regex.groupindex
        ):
            problems.append(ConfigProblem(file, rule_id, f"group {group!r} does not exist in {pattern.name!r}",
                                          "point `group` at a capture group of every pattern"))
    validator = raw.get("validator")
    if validator and validator not in VALIDATORS:
        problems.append(ConfigProblem(file, rule_id, f"unknown validator {validator!r}",
                                      f"one of {', '.join(sorted(VALIDATORS))}"))
    allow = [_compile(str(a), file, rule_id, problems) for a in raw.get("allow") or []]
    context = tuple(str(c).lower() for c in raw.get("context") or [])
    examples = raw.get("examples") or {}
    if len(problems) != before:
        return None
    return Rule(
        id=rule_id,
        entity=entity,
        category=category,
        patterns=tuple(patterns),
        source=file,
        description=str(raw.get("description", "")),
        group=group,
        keywords=tuple(str(k).lower() for k in raw.get("keywords") or []),
        context=context,
        context_required=bool(raw.get("context_required", False)),
        validator=validator,
        min_entropy=raw.get("min_entropy"),
        allow=tuple(a for a in allow if a is not None),
        placeholders=bool(raw.get("placeholders", category == "credential")),
        examples_match=tuple(str(e) for e in examples.get("match") or []),
        examples_no_match=tuple(str(e) for e in examples.get("no_match") or []),
        context_regex=re.compile(r"(?i)\b(" + "|".join(re.escape(c) for c in context) + r")") if context else None,
    )


def load_rules(rules_dir: Path | None = None, *, check_examples: bool = True) -> RuleSet:
    """Load every *.yaml under `rules_dir`; raise ConfigError listing every problem found."""
    ruleset, problems = collect_rules(rules_dir, check_examples=check_examples)
    if problems:
        raise ConfigError(problems)
    return ruleset


def collect_rules(rules_dir: Path | None = None, *, check_examples: bool = True) -> tuple[RuleSet, list[ConfigProblem]]:
    """Like load_rules, but return the problems instead of raising (for `check-config`)."""
    import hashlib

    rules_dir = Path(rules_dir or DEFAULT_RULES_DIR)
    problems: list[ConfigProblem] = []
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    digest = hashlib.sha256()
    files = sorted(rules_dir.glob("*.yaml")) if rules_dir.is_dir() else []
    if not files:
        problems.append(ConfigProblem(str(rules_dir), None, "no rule files (*.yaml) found", "point at recognizers/rules"))
    for path in files:
        text = path.read_text(encoding="utf-8")
        digest.update(path.name.encode() + b"\0" + text.encode())
        try:
            data = yaml.load(text, Loader=_YAML_LOADER) or {}
        except yaml.YAMLError as exc:
            problems.append(ConfigProblem(str(path), None, f"not valid YAML: {exc}", "fix the YAML syntax"))
            continue
        for raw in data.get("rules") or []:
            rule = parse_rule(raw, str(path), problems)
            if rule is None:
                continue
            if rule.id in seen:
                problems.append(ConfigProblem(str(path), rule.id, f"duplicate rule id (also in {seen[rule.id]})",
                                              "rule ids must be unique across all files"))
                continue
            seen[rule.id] = str(path)
            rules.append(rule)
    placeholders_path = rules_dir.parent / "placeholders.yaml"
    if not placeholders_path.exists():
        placeholders_path = PLACEHOLDERS_FILE
    placeholder_text = placeholders_path.read_text(encoding="utf-8")
    digest.update(placeholder_text.encode())
    ruleset = RuleSet(rules, Placeholders(yaml.safe_load(placeholder_text) or {}), version=digest.hexdigest()[:12])
    if check_examples:
        problems += ruleset.check_examples()
    return ruleset, problems
