"""Decide what happens to a message. Pure: findings and a context in, a Decision with reasons out.

The policy never sees a request and never does I/O; reasons name rule ids and entity types, never values.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from slack_pii.errors import ConfigError, ConfigProblem
from slack_pii.detect.findings import Finding
from slack_pii.detect.files_policy import FilePolicy, parse_file_policy
from slack_pii.detect.shipped import RECOGNIZERS_DIR
from slack_pii.detect.yaml_schema import StrictModel, describe_shape, explain_errors, yaml_error_where
from slack_pii.keys import fingerprint

ACTIONS = ("allow", "warn", "redact", "block")
SEVERITY = {action: rank for rank, action in enumerate(ACTIONS)}
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
    files: FilePolicy = FilePolicy()

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

# Categories whose `allow` lets a live secret or an identity document through: only with `i_know: true`.
PROTECTED_CATEGORIES = ("credential", "government_id")
Action = Literal["allow", "warn", "redact", "block"]


class Entry(StrictModel):
    """What to do with a category or an entity: `redact`, or `{action: allow, i_know: true}` to acknowledge an
    action that lets credentials or government ids through."""

    action: Action
    i_know: bool = Field(False, description="true: this entry lets a credential or government id through on purpose")

    @model_validator(mode="before")
    @classmethod
    def _from_action(cls, data: Any) -> Any:
        return {"action": data} if isinstance(data, str) else data


Threshold = Annotated[float, Field(ge=0, le=1, description="findings scoring below it are reported as allow")]


class ScopeModel(StrictModel):
    categories: dict[str, Entry] = Field(default_factory=dict, description="category -> action")
    entities: dict[str, Entry] = Field(default_factory=dict, description="entity -> action; wins over its category")
    thresholds: dict[str, Threshold] = Field(default_factory=dict, description="`default` or an entity -> 0.0-1.0")


class AllowModel(StrictModel):
    values: list[str] = Field(default_factory=list, description="exact values never acted on (case-insensitive)")
    patterns: list[str] = Field(default_factory=list, description="regexes matched against the whole value")
    fingerprints: list[str] = Field(default_factory=list, description="keyed fingerprints (slack-pii feedback)")


class RedactionModel(StrictModel):
    operator: Literal["replace", "mask", "hash"] = "replace"
    keep_last: int = Field(4, ge=0, description="mask: characters left visible at the end")
    char: str = Field("•", min_length=1, description="mask: the masking character")


class RedactionSection(StrictModel):
    default: RedactionModel = Field(default_factory=RedactionModel)
    entities: dict[str, RedactionModel] = Field(default_factory=dict)


class FilesModel(StrictModel):
    """The `files:` section (meaning in files_policy.FilePolicy; its parser adds the checks between fields)."""

    types: dict[str, Action] = Field(default_factory=dict, description="file type -> action for risky files")
    max_bytes: int = Field(25 * 1024 * 1024, gt=0, description="larger files are refused (bytes)")
    unreadable: Action = Field("block", description="encrypted, corrupt, mislabelled or hostile files")
    unscanned: Action = Field("allow", description="types with no extractor (audio, video, binaries...)")
    redaction: Literal["mask", "label"] = Field("mask", description="mask keeps the byte length; label re-announces it")


class PolicyFile(ScopeModel):
    """recognizers/policy.yaml. `categories` is required: without it every finding gets `default_action`."""

    version: Literal[1] = 1
    categories: dict[str, Entry] = Field(description="category -> action (required)")
    default_action: Entry = Field(default_factory=lambda: Entry(action="warn"),
                                  description="for an entity with no category or entity entry")
    allow: AllowModel = Field(default_factory=AllowModel)
    channels: dict[str, ScopeModel] = Field(default_factory=dict, description="overrides by channel id or #name")
    redaction: RedactionSection = Field(default_factory=RedactionSection)
    on_scan_error: Literal["block", "forward"] = "block"
    files: FilesModel = Field(default_factory=FilesModel, description="uploaded and shared files")
    country_recognizers: list[str] = Field(default_factory=list, description="Presidio predefined country "
                                           "recognizers to run, by class name (e.g. UkNinoRecognizer); category "
                                           "government_id")


def policy_schema() -> dict:
    """JSON Schema of the policy file, for editors (`slack-pii check-config --schema policy`)."""
    return PolicyFile.model_json_schema()


def load_policy(path: Path | None = None, known_entities: Iterable[str] | Mapping[str, str] | None = None,
                known_categories: Iterable[str] | None = None) -> Policy:
    policy, problems = collect_policy(path, known_entities, known_categories)
    if problems:
        raise ConfigError(problems)
    return policy


def collect_policy(path: Path | None = None, known_entities: Iterable[str] | Mapping[str, str] | None = None,
                   known_categories: Iterable[str] | None = None) -> tuple[Policy | None, list[ConfigProblem]]:
    """Parse a policy file; return every problem, each naming the key and the fix.

    `known_entities` may map each entity to its category, so that `allow` on, say, AWS_ACCESS_KEY_ID needs the
    same acknowledgement as `allow` on the credential category.
    """
    path = Path(path or DEFAULT_POLICY_FILE)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except OSError as exc:
        return None, [ConfigProblem(file, None, f"cannot read policy ({exc.strerror or type(exc).__name__})",
                                    "fix the path (SLACK_PII_POLICY_FILE or --policy)")]
    except yaml.YAMLError as exc:
        return None, [ConfigProblem(file, None, f"not valid YAML ({yaml_error_where(exc)})", "fix the YAML syntax")]
    if not isinstance(raw, dict):
        return None, [ConfigProblem(file, None, f"the policy is {describe_shape(raw)}, not a mapping of sections",
                                    "start from the shipped recognizers/policy.yaml (categories:, entities: ...)")]
    try:
        model = PolicyFile.model_validate(raw)
    except ValidationError as exc:
        return None, [ConfigProblem(file, None, message, fix) for message, fix in explain_errors(exc)]
    problems: list[ConfigProblem] = []
    entity_category = dict(known_entities) if isinstance(known_entities, Mapping) else None
    entities = set(known_entities) if known_entities is not None else None
    categories = set(known_categories) if known_categories is not None else None

    def problem(key: str, message: str, fix: str) -> None:
        problems.append(ConfigProblem(file, None, f"{key}: {message}", fix))

    def check_scope(scope: ScopeModel, where: str) -> Scope:
        for name, entry in scope.categories.items():
            if categories is not None and name not in categories:
                problem(f"{where}categories.{name}", f"unknown category {name!r}", f"one of {', '.join(sorted(categories))}")
            elif name in PROTECTED_CATEGORIES:
                check_allow(entry, f"{where}categories.{name}", f"every {name.replace('_', ' ')}")
        for name, entry in scope.entities.items():
            if entities is not None and name not in entities:
                problem(f"{where}entities.{name}", f"unknown entity {name!r}", "use an entity a rule in recognizers/ produces")
            elif entity_category and entity_category.get(name) in PROTECTED_CATEGORIES:
                check_allow(entry, f"{where}entities.{name}", f"every {name} ({entity_category[name].replace('_', ' ')})")
        for name in scope.thresholds:
            if name != "default" and entities is not None and name not in entities:
                problem(f"{where}thresholds.{name}", f"unknown entity {name!r}",
                        "use `default` or an entity a rule in recognizers/ produces")
        return Scope({k: e.action for k, e in scope.categories.items()}, {k: e.action for k, e in scope.entities.items()},
                     dict(scope.thresholds))

    def check_allow(entry: Entry, key: str, what: str) -> None:
        if entry.action == "allow" and not entry.i_know:
            problem(key, f"`allow` lets {what} through to Slack unredacted",
                    "use warn, redact or block; if you mean it, write `{action: allow, i_know: true}`")

    base = check_scope(model, "")
    channels = {str(name): check_scope(scope, f"channels.{name}.") for name, scope in model.channels.items()}
    if model.default_action.action == "allow" and not model.default_action.i_know:
        for name in PROTECTED_CATEGORIES:
            if name not in model.categories:
                problem("default_action", f"`allow`, and categories.{name} is not set: every "
                        f"{name.replace('_', ' ')} would go through", f"add `categories.{name}: block`, or write "
                        "`default_action: {action: allow, i_know: true}` if you mean it")
    patterns = []
    for index, pattern in enumerate(model.allow.patterns):
        try:
            patterns.append(re.compile(pattern))
        except re.error as exc:
            problem(f"allow.patterns[{index}]", f"bad regex ({exc})", "fix the regular expression")
    for name in model.redaction.entities:
        if entities is not None and name not in entities:
            problem(f"redaction.entities.{name}", f"unknown entity {name!r}", "use an entity a rule in recognizers/ produces")

    def redaction(data: RedactionModel) -> Redaction:
        return Redaction(data.operator, data.keep_last, data.char)

    policy = Policy(
        base=base,
        default_action=model.default_action.action,
        channels=channels,
        allow_values=frozenset(v.lower() for v in model.allow.values),
        allow_patterns=tuple(patterns),
        allow_fingerprints=frozenset(model.allow.fingerprints),
        redaction_default=redaction(model.redaction.default),
        redaction={name: redaction(data) for name, data in model.redaction.entities.items()},
        on_scan_error=model.on_scan_error,
        version=hashlib.sha256(text.encode()).hexdigest()[:12],
        source=file,
        files=parse_file_policy(raw.get("files"), file, problems, ACTIONS),
    )
    return policy, problems
