"""The pipeline in one call: payload -> segments -> findings -> decision -> outcome.

Each stage is its own module (slack_text, engine, policy, redact); this one only strings them together so the
CLI, the Web API proxy and the Bolt app scan the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_pii.detect.engine import Engine
from slack_pii.detect.findings import Finding, Suppressed
from slack_pii.detect.policy import Context, Decision, Policy, decide
from slack_pii.detect.redact import Redactor
from slack_pii.detect.slack_text import Segment, extract_segments, reassemble
from slack_pii.keys import Keys, keys_for


@dataclass(frozen=True)
class Outcome:
    """What happens to one message: the verdict, why, and the payload as it would be sent."""

    decision: Decision
    segments: tuple[Segment, ...]
    redacted: Any  # the payload (or text) with every redact/block finding replaced
    suppressed: tuple[Suppressed, ...] = ()
    config_version: str = ""

    @property
    def verdict(self) -> str:
        return self.decision.verdict

    @property
    def findings(self) -> list[Finding]:
        return [a.finding for a in self.decision.actions]

    def summary(self) -> dict:
        """Shape only (entity types, counts, rule ids): safe for logs, audit rows and error messages."""
        counts: dict[str, int] = {}
        for action in self.decision.actions:
            counts[action.finding.entity_type] = counts.get(action.finding.entity_type, 0) + 1
        return {"verdict": self.verdict, "entities": counts, "rules": self.decision.rule_ids,
                "reasons": list(self.decision.reasons)}


@dataclass
class Scanner:
    """Holds the built engine, the policy and the redactor; cheap to call per message."""

    engine: Engine
    policy: Policy
    redactor: Redactor
    fingerprint_key: bytes = field(default=b"", repr=False)
    extra_allow_fingerprints: frozenset[str] = field(default_factory=frozenset, repr=False)

    @property
    def config_version(self) -> str:
        return f"{self.engine.version}-{self.policy.version}"

    def context(self, channel_id: str | None = None, channel_name: str | None = None) -> Context:
        return Context(channel_id, channel_name, self.fingerprint_key, self.extra_allow_fingerprints)

    def scan(self, payload: Any, *, channel_id: str | None = None, channel_name: str | None = None) -> Outcome:
        return self.scan_many([payload], channel_ids=[channel_id], channel_name=channel_name)[0]

    def scan_many(self, payloads: Sequence[Any], *, channel_ids: Sequence[str | None] | None = None,
                  channel_name: str | None = None) -> list[Outcome]:
        """Scan a batch (NER batched through nlp.pipe); `payloads` are strings or Web API payload dicts."""
        segment_lists = [extract_segments(p) for p in payloads]
        results = self.engine.scan_batch(segment_lists)
        outcomes = []
        channel_ids = channel_ids or [None] * len(payloads)
        for payload, segments, result, channel in zip(payloads, segment_lists, results, channel_ids):
            decision = decide(result.findings, self.policy, self.context(channel, channel_name))
            edits = self.redactor.redact(segments, decision)
            outcomes.append(Outcome(decision, tuple(segments), reassemble(payload, edits), tuple(result.suppressed),
                                    self.config_version))
        return outcomes


def build_scanner(settings, keys: Keys | None = None) -> Scanner:
    """Compile rules, load the model and the policy from settings: the start-up path of every command.

    Without `keys` (commands that only read) no key file is created: see `keys_for`."""
    from slack_pii.detect.policy import load_policy
    from slack_pii.detect.rules import CATEGORIES

    from slack_pii.detect.engine import country_recognizer_names

    engine = Engine.build(settings.recognizers_dir, spacy_model=settings.spacy_model or None, ner=settings.ner,
                          country=country_recognizer_names(settings.policy_file))
    policy = load_policy(settings.policy_file,
                         known_entities={**known_entities_for_rules(engine.ruleset),
                                         **{entity: "government_id" for entity in engine.country_entities}},
                         known_categories=CATEGORIES)
    keys = keys or keys_for(settings, create=False)
    return Scanner(engine, policy, Redactor(policy, keys.pseudonyms), fingerprint_key=keys.fingerprints)


def known_entities_for_rules(ruleset, policy_file=None) -> dict[str, str]:
    """Entities the policy may name, each with its category: the rules', the built-in phone and NER ones, and those
    of the Presidio country recognizers the policy file enables (government ids)."""
    from slack_pii.detect.engine import CATEGORY_OF_BUILTIN, collect_country_recognizers, country_recognizer_names

    known = {**CATEGORY_OF_BUILTIN, **{r.entity: r.category for r in ruleset.rules}}
    if policy_file is not None:
        recognizers, _ = collect_country_recognizers(country_recognizer_names(policy_file))
        known.update({e: "government_id" for r in recognizers for e in r.supported_entities})
    return dict(sorted(known.items()))
