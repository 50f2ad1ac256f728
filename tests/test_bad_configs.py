"""Configs that would hurt people are refused by `check-config` AND by hot reload, each with one line naming the
file, the key and the fix. A typo like `thresholds.default: 5` used to make every finding `allow`."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from slack_pii.cli import main
from slack_pii.config import Settings
from slack_pii.detect.policy import DEFAULT_POLICY_FILE, Context, decide, load_policy
from slack_pii.detect.rules import DEFAULT_RULES_DIR, PLACEHOLDERS_FILE
from slack_pii.detect.scanner import known_entities_for_rules
from slack_pii.reload import ConfigWatcher, ScannerSlot
from tests.conftest import TEST_KEY
from tests.factories import finding

SHIPPED_POLICY = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
# A few rule files keep each check fast while still naming credentials, government ids and contacts.
SMALL_RULES = ("cloud.yaml", "identity.yaml", "contact.yaml", "financial.yaml")


def policy(change) -> str:
    data = copy.deepcopy(SHIPPED_POLICY)
    change(data)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _set(path: str, value):
    def change(data):
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return change


def _drop(path: str):
    def change(data):
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        del node[last]
    return change


def _both(*changes):
    def change(data):
        for one in changes:
            one(data)
    return change


# (case id, policy text, what the one line must name)
BAD_POLICIES = [
    ("threshold-typo-5", policy(_set("thresholds.default", 5)), "thresholds.default"),
    ("threshold-negative", policy(_set("thresholds.default", -0.1)), "thresholds.default"),
    ("threshold-not-a-number", policy(_set("thresholds.default", "high")), "thresholds.default"),
    ("entity-threshold-above-one", policy(_set("thresholds.US_SSN", 1.5)), "thresholds.US_SSN"),
    ("threshold-unknown-entity", policy(_set("thresholds.US_SSNS", 0.5)), "thresholds.US_SSNS"),
    ("unknown-action-category", policy(_set("categories.financial", "blok")), "categories.financial"),
    ("unknown-action-entity", policy(_set("entities.STREET_ADDRESS", "mask")), "entities.STREET_ADDRESS"),
    ("unknown-default-action", policy(_set("default_action", "ignore")), "default_action"),
    ("unknown-category", policy(_set("categories.credentials", "block")), "categories.credentials"),
    ("unknown-entity", policy(_set("entities.CREDIT_CARDS", "block")), "entities.CREDIT_CARDS"),
    ("allow-credentials", policy(_set("categories.credential", "allow")), "categories.credential"),
    ("allow-government-ids", policy(_set("categories.government_id", "allow")), "categories.government_id"),
    ("allow-a-credential-entity", policy(_set("entities.AWS_ACCESS_KEY_ID", "allow")), "entities.AWS_ACCESS_KEY_ID"),
    ("allow-an-id-entity", policy(_set("entities.US_SSN", "allow")), "entities.US_SSN"),
    ("channel-allows-credentials", policy(_set("channels.#security-incidents.categories.credential", "allow")),
     "channels.#security-incidents.categories.credential"),
    ("channel-allows-an-entity", policy(_set("channels.C0DEVOPS.entities.GITHUB_TOKEN", "allow")),
     "channels.C0DEVOPS.entities.GITHUB_TOKEN"),
    ("default-allow-covers-credentials", policy(_both(_drop("categories.credential"), _set("default_action", "allow"))),
     "default_action"),
    ("i-know-false", policy(_set("categories.credential", {"action": "allow", "i_know": False})),
     "categories.credential"),
    ("misspelt-top-level-key", policy(_set("thresold", {"default": 0.5})), "thresold"),
    ("misspelt-entry-key", policy(_set("categories.credential", {"action": "allow", "i_knwo": True})),
     "categories.credential.i_knwo"),
    ("missing-categories", policy(_drop("categories")), "categories"),
    ("categories-is-a-list", policy(_set("categories", ["credential", "financial"])), "categories"),
    ("channel-is-a-string", policy(_set("channels.#general", "block")), "channels.#general"),
    ("unknown-redaction-operator", policy(_set("redaction.default", {"operator": "scrub"})), "redaction.default.operator"),
    ("bad-allow-regex", policy(_set("allow.patterns", ["(unclosed"])), "allow.patterns[0]"),
    ("unknown-on-scan-error", policy(_set("on_scan_error", "ignore")), "on_scan_error"),
    ("whole-file-is-a-string", "just a string\n", "not a mapping"),
    ("whole-file-is-a-list", "- credential\n- block\n", "not a mapping"),
    ("empty-file", "", "empty"),
    ("not-yaml", "categories: [credential\n", "not valid YAML"),
]

GOOD_RULE = {"id": "team-ticket-token", "entity": "TEAM_TOKEN", "category": "credential",
             "patterns": [{"name": "token (strong)", "regex": r"\btt_[a-z0-9]{20}\b", "score": 1.0}],
             "keywords": ["tt_"], "examples": {"match": ["tt_abcdefghij0123456789"]}}


def rules_file(change) -> str:
    rule = copy.deepcopy(GOOD_RULE)
    change(rule)
    return yaml.safe_dump({"rules": [rule]}, sort_keys=False)


BAD_RULES = [
    ("rules-file-is-a-string", "rules everywhere\n", "not a mapping"),
    ("rules-is-a-mapping", yaml.safe_dump({"rules": {"id": "x"}}), "rules"),
    ("rule-is-a-string", yaml.safe_dump({"rules": ["team-ticket-token"]}), "not a mapping"),
    ("rule-without-patterns", rules_file(lambda r: r.pop("patterns")), "patterns"),
    ("pattern-without-regex", rules_file(lambda r: r["patterns"][0].pop("regex")), "patterns.0.regex"),
    ("score-above-one", rules_file(lambda r: r["patterns"][0].update(score=1.5)), "patterns.0.score"),
    ("misspelt-rule-key", rules_file(lambda r: r.update(keyword=["tt_"])), "keyword"),
    ("unknown-rule-category", rules_file(lambda r: r.update(category="secret")), "unknown category 'secret'"),
    ("keywords-not-a-list", rules_file(lambda r: r.update(keywords="tt_")), "keywords"),
]


@pytest.fixture
def config_dir(tmp_path) -> Path:
    root = tmp_path / "recognizers"
    (root / "rules").mkdir(parents=True)
    for name in SMALL_RULES:
        shutil.copy(DEFAULT_RULES_DIR / name, root / "rules" / name)
    shutil.copy(PLACEHOLDERS_FILE, root / "placeholders.yaml")
    shutil.copy(DEFAULT_POLICY_FILE, root / "policy.yaml")
    return root


def check_config(capsys, config_dir: Path) -> tuple[int, list[str]]:
    code = main(["check-config", "--recognizers", str(config_dir / "rules"), "--policy", str(config_dir / "policy.yaml")])
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.startswith("error:")] + [captured.out]


def assert_named(lines: list[str], file: Path, key: str) -> None:
    line = next((line for line in lines if key in line), None)
    assert line is not None, lines
    assert str(file) in line and "fix:" in line and "\n" not in line
    assert "Traceback" not in "".join(lines)


async def reload_problems(scanner, config_dir: Path, tmp_path: Path, write) -> tuple[str, ...]:
    settings = Settings(data_dir=tmp_path / "data", secret_key=TEST_KEY, recognizers_dir=config_dir / "rules",
                        policy_file=config_dir / "policy.yaml")
    slot = ScannerSlot(scanner)
    watcher = ConfigWatcher(settings, slot)
    write()
    result = await watcher.reload("test")
    assert not result.ok and slot.current is scanner and slot.rejected == 1
    return result.problems


@pytest.mark.parametrize("text, key", [case[1:] for case in BAD_POLICIES], ids=[case[0] for case in BAD_POLICIES])
async def test_a_bad_policy_fails_check_config_and_hot_reload(capsys, scanner, config_dir, tmp_path, text, key):
    policy_file = config_dir / "policy.yaml"
    policy_file.write_text(text)
    code, lines = check_config(capsys, config_dir)
    assert code == 2
    assert_named(lines, policy_file, key)
    shutil.copy(DEFAULT_POLICY_FILE, policy_file)
    problems = await reload_problems(scanner, config_dir, tmp_path, lambda: policy_file.write_text(text))
    assert_named(list(problems), policy_file, key)


@pytest.mark.parametrize("text, key", [case[1:] for case in BAD_RULES], ids=[case[0] for case in BAD_RULES])
async def test_a_bad_rules_file_fails_check_config_and_hot_reload(capsys, scanner, config_dir, tmp_path, text, key):
    rules = config_dir / "rules" / "team.yaml"
    rules.write_text(text)
    code, lines = check_config(capsys, config_dir)
    assert code == 2
    assert_named(lines, rules, key)
    rules.unlink()
    problems = await reload_problems(scanner, config_dir, tmp_path, lambda: rules.write_text(text))
    assert_named(list(problems), rules, key)


def test_the_good_rule_of_the_table_passes(capsys, config_dir):
    (config_dir / "rules" / "team.yaml").write_text(rules_file(lambda r: None))
    code, lines = check_config(capsys, config_dir)
    assert code == 0, lines


def test_an_acknowledged_allow_passes_and_lets_that_credential_through(capsys, config_dir, scanner):
    policy_file = config_dir / "policy.yaml"
    policy_file.write_text(policy(_set("entities.GITHUB_TOKEN", {"action": "allow", "i_know": True})))
    code, lines = check_config(capsys, config_dir)
    assert code == 0, lines
    loaded = load_policy(policy_file, known_entities_for_rules(scanner.engine.ruleset))
    decision = decide([finding("GITHUB_TOKEN", category="credential"), finding("AWS_ACCESS_KEY_ID", category="credential")],
                      loaded, Context())
    assert [a.action for a in decision.actions] == ["allow", "block"]


@pytest.mark.parametrize("kind, required", [("policy", "categories"), ("rules", "rules")])
def test_schema_for_editors_names_the_required_keys_and_the_acknowledgement(capsys, kind, required):
    import json

    assert main(["check-config", "--schema", kind]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert required in schema["required"] and schema["additionalProperties"] is False
    assert ("i_know" in json.dumps(schema)) == (kind == "policy")
