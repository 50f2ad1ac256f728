"""Decide what happens to a message. Pure: findings and a context in, a Decision with reasons out.

The policy never sees a request and never does I/O; reasons name rule ids and entity types, never values.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from slack_pii.errors import ConfigError, ConfigProblem
from slack_pii.detect.findings import Finding
from slack_pii.detect.shipped import RECOGNIZERS_DIR
from slack_pii.keys import fingerprint

ACTIONS = ("allow", "warn", "redact", "block")
SEVERITY = {action: rank for rank, action in enumerate(ACTIONS)}
OPERATORS = ("replace", "mask", "hash")
DEFAULT_POLICY_FILE = RECOGNIZERS_DIR / "policy.yaml"


@dataclass(frozen=True)
class Redaction:
    operator: str = "replace"
    keep_last: int = 4
    char: str = "•"


@dataclass(frozen=True)
class Scope:
    """Actions and thresholds at one level (the whole policy, or one channel's override)."""

    categories: dict[str, str] = field(default_factory=dict)
    entities: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    base: Scope
    default_action: str = "warn"
    channels: dict[str, Scope] = field(default_factory=dict)
    allow_values: frozenset[str] = frozenset()
    allow_patterns: tuple[re.Pattern, ...] = ()
    allow_fingerprints: frozenset[str] = frozenset()
    redaction_default: Redaction = Redaction()
    redaction: dict[str, Redaction] = field(default_factory=dict)
    on_scan_error: str = "block"
    version: str = ""
    source: str = ""

    def redaction_for(self, entity: str) -> Redaction:
        return self.redaction.get(entity, self.redaction_default)


@dataclass(frozen=True)
class Context:
    """What the policy may know about where a message is going."""

    channel_id: str | None = None
    channel_name: str | None = None
    fingerprint_key: bytes = field(default=b"", repr=False)
    extra_allow_fingerprints: frozenset[str] = field(default=frozenset(), repr=False)


@dataclass(frozen=True)
class FindingAction:
    finding: Finding
    action: str
    reason: str


@dataclass(frozen=True)
class Decision:
    verdict: str
    actions: tuple[FindingAction, ...]
    reasons: tuple[str, ...]

    @property
    def to_redact(self) -> list[Finding]:
        """Findings whose value must not leave: redacted in what is sent (or in the preview of a block)."""
        return [a.finding for a in self.actions if a.action in ("redact", "block")]

    @property
    def entity_types(self) -> list[str]:
        return sorted({a.finding.entity_type for a in self.actions if a.action != "allow"})

    @property
    def rule_ids(self) -> list[str]:
        return sorted({a.finding.rule for a in self.actions if a.action != "allow"})


def decide(findings: Sequence[Finding], policy: Policy, context: Context = Context()) -> Decision:
    """Give each finding an action and the message a verdict (the strongest action)."""
    scopes = [policy.base]
    for key in (context.channel_id, f"#{context.channel_name}" if context.channel_name else None):
        if key and key in policy.channels:
            scopes.append(policy.channels[key])
    allow_fps = policy.allow_fingerprints | context.extra_allow_fingerprints
    actions = []
    for finding in findings:
        action, reason = _action_for(finding, policy, scopes, allow_fps, context.fingerprint_key)
        actions.append(FindingAction(finding, action, reason))
    verdict = max((a.action for a in actions), key=SEVERITY.__getitem__, default="allow")
    reasons = tuple(dict.fromkeys(a.reason for a in actions if a.action == verdict and verdict != "allow"))
    return Decision(verdict, tuple(actions), reasons)


def _action_for(finding: Finding, policy: Policy, scopes: list[Scope], allow_fps: frozenset[str],
                key: bytes) -> tuple[str, str]:
    label = f"{finding.rule} ({finding.entity_type})"
    value = finding.value
    if value and (value.lower() in policy.allow_values or any(p.search(value) for p in policy.allow_patterns)):
        return "allow", f"{label}: allow-listed"
    if value and allow_fps and key and fingerprint(value, key) in allow_fps:
        return "allow", f"{label}: allow-listed fingerprint"
    action, threshold = policy.default_action, 0.5
    for scope in scopes:  # later (channel) scopes override earlier ones
        action = scope.entities.get(finding.entity_type, scope.categories.get(finding.category, action))
        threshold = scope.thresholds.get(finding.entity_type, scope.thresholds.get("default", threshold))
    if finding.score < threshold:
        return "allow", f"{label}: score {finding.score:.2f} below threshold {threshold:.2f}"
    return action, f"{label} -> {action}"


# --- loading ------------------------------------------------------------------------------------------------


def load_policy(path: Path | None = None, known_entities: Iterable[str] | None = None,
                known_categories: Iterable[str] | None = None) -> Policy:
    policy, problems = collect_policy(path, known_entities, known_categories)
    if problems:
        raise ConfigError(problems)
    return policy


def collect_policy(path: Path | None = None, known_entities: Iterable[str] | None = None,
                   known_categories: Iterable[str] | None = None) -> tuple[Policy | None, list[ConfigProblem]]:
    """Parse a policy file; return every problem (unknown actions, entities, categories, bad regexes)."""
    path = Path(path or DEFAULT_POLICY_FILE)
    file = str(path)
    problems: list[ConfigProblem] = []
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError) as exc:
        return None, [ConfigProblem(file, None, f"cannot read policy: {exc}", "fix the path or the YAML syntax")]
    entities = set(known_entities) if known_entities is not None else None
    categories = set(known_categories) if known_categories is not None else None

    def check_action(action: object, where: str) -> str:
        if action not in ACTIONS:
            problems.append(ConfigProblem(file, None, f"{where}: unknown action {action!r}", f"one of {', '.join(ACTIONS)}"))
            return "warn"
        return str(action)

    def parse_scope(data: dict, where: str) -> Scope:
        scope_categories = {}
        for name, action in (data.get("categories") or {}).items():
            if categories is not None and name not in categories:
                problems.append(ConfigProblem(file, None, f"{where}categories: unknown category {name!r}",
                                              f"one of {', '.join(sorted(categories))}"))
            scope_categories[name] = check_action(action, f"{where}categories.{name}")
        scope_entities = {}
        for name, action in (data.get("entities") or {}).items():
            if entities is not None and name not in entities:
                problems.append(ConfigProblem(file, None, f"{where}entities: unknown entity {name!r}",
                                              "use an entity a rule in recognizers/ produces"))
            scope_entities[name] = check_action(action, f"{where}entities.{name}")
        thresholds = {}
        for name, value in (data.get("thresholds") or {}).items():
            try:
                thresholds[name] = float(value)
            except (TypeError, ValueError):
                problems.append(ConfigProblem(file, None, f"{where}thresholds.{name}: not a number", "use 0.0-1.0"))
        return Scope(scope_categories, scope_entities, thresholds)

    base = parse_scope(raw, "")
    channels = {str(name): parse_scope(data or {}, f"channels.{name}.") for name, data in (raw.get("channels") or {}).items()}
    allow = raw.get("allow") or {}
    patterns = []
    for pattern in allow.get("patterns") or []:
        try:
            patterns.append(re.compile(pattern))
        except re.error as exc:
            problems.append(ConfigProblem(file, None, f"allow.patterns: bad regex {pattern!r}: {exc}", "fix the regex"))
    redaction_raw = raw.get("redaction") or {}

    def parse_redaction(data: dict, where: str) -> Redaction:
        operator = (data or {}).get("operator", "replace")
        if operator not in OPERATORS:
            problems.append(ConfigProblem(file, None, f"{where}: unknown operator {operator!r}", f"one of {', '.join(OPERATORS)}"))
            operator = "replace"
        return Redaction(operator, int(data.get("keep_last", 4)), str(data.get("char", "•")))

    redactions = {}
    for name, data in (redaction_raw.get("entities") or {}).items():
        if entities is not None and name not in entities:
            problems.append(ConfigProblem(file, None, f"redaction.entities: unknown entity {name!r}",
                                          "use an entity a rule in recognizers/ produces"))
        redactions[name] = parse_redaction(data, f"redaction.entities.{name}")
    on_error = raw.get("on_scan_error", "block")
    if on_error not in ("block", "forward"):
        problems.append(ConfigProblem(file, None, f"on_scan_error: {on_error!r}", "block (fail closed) or forward"))
    policy = Policy(
        base=base,
        default_action=check_action(raw.get("default_action", "warn"), "default_action"),
        channels=channels,
        allow_values=frozenset(str(v).lower() for v in allow.get("values") or []),
        allow_patterns=tuple(patterns),
        allow_fingerprints=frozenset(str(f) for f in allow.get("fingerprints") or []),
        redaction_default=parse_redaction(redaction_raw.get("default") or {}, "redaction.default"),
        redaction=redactions,
        on_scan_error=on_error if on_error in ("block", "forward") else "block",
        version=hashlib.sha256(text.encode()).hexdigest()[:12],
        source=file,
    )
    return policy, problems
