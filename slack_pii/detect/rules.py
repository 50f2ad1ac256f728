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
from typing import Any, Literal

import regex
import yaml
from pydantic import Field, ValidationError

from slack_pii.detect.yaml_schema import StrictModel, describe_shape, explain_errors, yaml_error_where
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
# NOTE: rule patterns are compiled with the `regex` module for its time limit (Presidio's default is 60 s; a chat
# message must never hold a request for long). Over the limit, TimeoutError is raised and the scan fails closed.
# The limit counts the process's CPU time (C `clock()`, all threads) from the start of the call, so it covers the
# matching alone (see `_spans`): checking code, first-use loading and a GC in between used to count. It is sized
# from measurement, not from hope: `bench/regex_budget.py` over the labelled sample, the conformance vectors and
# 1000 generated messages (4662 scan texts x 104 patterns, best of 3) on a 2-core machine busy with other test
# suites found the slowest benign call at 4.1-12.8 ms (generic-assigned-secret, a 2.8k-char text) and the densest at
# 1.5-4.5 us/char (texts of 500+ chars). Matching is linear in length, so a 40k-char message (Slack's limit) may
# legitimately need ~0.2 s for that one pattern. Budget per call: max(floor, length x per-char), i.e. >= 39x the
# slowest call and >= 33x the densest per character, as measured on the loaded machine. Under bench/hog_loop.sh (a
# busy loop per core on top) the same wall-clock measurement read 22.7 ms and 5.7 us/char (22x, 26x); the limit
# itself counts CPU time, which other processes do not inflate.
REGEX_SECONDS_FLOOR = 0.5
REGEX_SECONDS_PER_CHAR = 150e-6

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster start-up

try:  # NOTE: hyperscan is an accelerator, never a requirement: without it every gated rule runs.
    import hyperscan
except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    hyperscan = None


# --- the YAML's shape (checked before anything is compiled) --------------------------------------------------


class PatternModel(StrictModel):
    name: str = Field("", description="says the strength, e.g. 'ssn (medium)'")
    regex: str = Field(description="a `regex`-module pattern")
    score: float = Field(0.5, gt=0, le=1, description="confidence of a match before validator and context")


class ExamplesModel(StrictModel):
    match: list[str] = Field(default_factory=list, description="texts the rule must find")
    no_match: list[str] = Field(default_factory=list, description="texts the rule must stay silent on")


class RuleModel(StrictModel):
    id: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", description="stable kebab-case id (audit rows name it)")
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", description="Presidio-style entity, e.g. US_SSN")
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    description: str = ""
    patterns: list[PatternModel] = Field(min_length=1)
    group: int | str = Field(0, description="capture group (number or name) holding the value")
    keywords: list[str] = Field(default_factory=list, description="gate: the rule runs only if one is present")
    context: list[str] = Field(default_factory=list, description="boost: words near a match raise its score")
    context_required: bool = False
    validator: str | None = None
    min_entropy: float | None = Field(None, ge=0)
    allow: list[str] = Field(default_factory=list, description="regexes on the value that let it through")
    placeholders: bool | None = Field(None, description="drop documented placeholders (default: credentials)")
    examples: ExamplesModel = Field(default_factory=ExamplesModel)


class RulesFile(StrictModel):
    rules: list[Any] = Field(description="the rules (each checked on its own, so one bad rule names itself)")


def rules_schema() -> dict:
    """JSON Schema of a rules file, for editors (`slack-pii check-config --schema rules`)."""
    schema = RulesFile.model_json_schema()
    schema["properties"]["rules"]["items"] = {"$ref": "#/$defs/RuleModel"}
    schema.setdefault("$defs", {}).update(RuleModel.model_json_schema(ref_template="#/$defs/{model}")["$defs"])
    schema["$defs"]["RuleModel"] = {k: v for k, v in RuleModel.model_json_schema(
        ref_template="#/$defs/{model}").items() if k != "$defs"}
    return schema


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
                for start, end in _spans(pattern.regex, text, rule.group):
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


def regex_budget(length: int) -> float:
    """Seconds one pattern may spend matching a text of `length` characters (see the NOTE at the top)."""
    return max(REGEX_SECONDS_FLOOR, length * REGEX_SECONDS_PER_CHAR)


def _spans(pattern: regex.Pattern, text: str, group: int | str) -> list[tuple[int, int]]:
    """Every non-empty span of `group` in `text`. Only this matching runs under the regex time limit: validators,
    allow-lists and placeholder checks run afterwards, so their first-use costs (and a GC) never count against it.
    """
    spans = []
    for m in pattern.finditer(text, timeout=regex_budget(len(text))):
        try:
            start, end = m.span(group)
        except IndexError:
            start, end = m.span()
        if 0 <= start < end:
            spans.append((start, end))
    return spans


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


def parse_rule(raw: object, file: str, problems: list[ConfigProblem]) -> Rule | None:
    """Check one rule's shape, then compile it; every problem names the file, the rule id and the fix."""
    rule_id = str(raw.get("id") or "") if isinstance(raw, dict) else ""
    if not isinstance(raw, dict):
        problems.append(ConfigProblem(file, None, f"a rule is {describe_shape(raw)}, not a mapping",
                                      "each `- ` under `rules:` is a mapping with id, entity, category, patterns"))
        return None
    try:
        model = RuleModel.model_validate(raw)
    except ValidationError as exc:
        shown = rule_id if re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", rule_id) else None
        for message, fix in explain_errors(exc, "rules"):
            if message.startswith("id:"):
                message, fix = f"missing or non-kebab-case `id` ({message[4:]})", "give every rule a stable kebab-case id"
            elif message.startswith("entity:") and "pattern" in message:
                fix = "use UPPER_SNAKE_CASE, e.g. US_SSN"
            elif message.startswith("category:"):
                message, fix = f"unknown category {raw.get('category')!r}", f"one of {', '.join(CATEGORIES)}"
            problems.append(ConfigProblem(file, shown, message, fix))
        return None
    before = len(problems)
    entity, category = model.entity, model.category
    patterns = []
    for index, item in enumerate(model.patterns):
        compiled = _compile(item.regex, file, rule_id, problems)
        if compiled is not None:
            patterns.append(Pattern(item.name or f"{rule_id} #{index}", compiled, item.score))
    group = model.group
    for pattern in patterns:
        if isinstance(group, int) and group > pattern.regex.groups or (
            isinstance(group, str) and group not in pattern.regex.groupindex
        ):
            problems.append(ConfigProblem(file, rule_id, f"group {group!r} does not exist in {pattern.name!r}",
                                          "point `group` at a capture group of every pattern"))
    validator = model.validator
    if validator and validator not in VALIDATORS:
        problems.append(ConfigProblem(file, rule_id, f"unknown validator {validator!r}",
                                      f"one of {', '.join(sorted(VALIDATORS))}"))
    allow = [_compile(a, file, rule_id, problems) for a in model.allow]
    context = tuple(c.lower() for c in model.context)
    if len(problems) != before:
        return None
    return Rule(
        id=rule_id,
        entity=entity,
        category=category,
        patterns=tuple(patterns),
        source=file,
        description=model.description,
        group=group,
        keywords=tuple(k.lower() for k in model.keywords),
        context=context,
        context_required=model.context_required,
        validator=validator,
        min_entropy=model.min_entropy,
        allow=tuple(a for a in allow if a is not None),
        placeholders=model.placeholders if model.placeholders is not None else category == "credential",
        examples_match=tuple(model.examples.match),
        examples_no_match=tuple(model.examples.no_match),
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
            data = yaml.load(text, Loader=_YAML_LOADER)
        except yaml.YAMLError as exc:
            problems.append(ConfigProblem(str(path), None, f"not valid YAML ({yaml_error_where(exc)})", "fix the YAML syntax"))
            continue
        if not isinstance(data, dict):
            problems.append(ConfigProblem(str(path), None, f"the file is {describe_shape(data)}, not a mapping with `rules:`",
                                          "start the file with `rules:` and a list of rules under it"))
            continue
        try:
            RulesFile.model_validate(data)
        except ValidationError as exc:
            problems += [ConfigProblem(str(path), None, message, fix) for message, fix in explain_errors(exc, "rules")]
            continue
        for raw in data["rules"]:
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
