"""`slack-pii check-config`: a security engineer editing rules gets every problem with its file, rule id and fix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slack_pii.cli import main
from slack_pii.detect.rules import DEFAULT_RULES_DIR
from slack_pii.detect.policy import DEFAULT_POLICY_FILE

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def rules_dir(tmp_path) -> Path:
    """A private copy of the shipped rules that a test may break."""
    target = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, target)
    return target


@pytest.fixture
def policy_file(tmp_path) -> Path:
    target = tmp_path / "policy.yaml"
    shutil.copy(DEFAULT_POLICY_FILE, target)
    return target


def edit_rule(rules_dir: Path, file: str, rule_id: str, change) -> Path:
    path = rules_dir / file
    data = yaml.safe_load(path.read_text())
    rule = next(r for r in data["rules"] if r["id"] == rule_id)
    change(rule)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def check(capsys, rules_dir: Path, policy_file: Path) -> tuple[int, str]:
    code = main(["check-config", "--recognizers", str(rules_dir), "--policy", str(policy_file)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_shipped_config_passes():
    result = subprocess.run([sys.executable, "-m", "slack_pii", "check-config"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_untouched_copy_passes(capsys, rules_dir, policy_file):
    code, output = check(capsys, rules_dir, policy_file)
    assert code == 0, output


def test_bad_regex_names_file_rule_and_fix(capsys, rules_dir, policy_file):
    path = edit_rule(rules_dir, "cloud.yaml", "npm-token",
                     lambda rule: rule["patterns"][0].update(regex=r"\bnpm_[A-Za-z0-9{36}(\b"))
    code, output = check(capsys, rules_dir, policy_file)
    assert code != 0
    line = next(line for line in output.splitlines() if "npm-token" in line)
    assert str(path) in line and "regex" in line and "fix:" in line


def test_unknown_validator_names_file_rule_and_fix(capsys, rules_dir, policy_file):
    path = edit_rule(rules_dir, "financial.yaml", "credit-card", lambda rule: rule.update(validator="luhn_mod11"))
    code, output = check(capsys, rules_dir, policy_file)
    assert code != 0
    line = next(line for line in output.splitlines() if "credit-card" in line and "validator" in line)
    assert str(path) in line and "luhn_mod11" in line and "fix:" in line
    assert "luhn" in line.split("fix:")[1]  # the fix lists the validators that do exist


def test_unknown_entity_in_policy_names_file_and_fix(capsys, rules_dir, policy_file):
    policy = yaml.safe_load(policy_file.read_text())
    policy["entities"]["CREDIT_CARDS"] = "block"  # a typo for CREDIT_CARD
    policy_file.write_text(yaml.safe_dump(policy, sort_keys=False, allow_unicode=True))
    code, output = check(capsys, rules_dir, policy_file)
    assert code != 0
    line = next(line for line in output.splitlines() if "CREDIT_CARDS" in line)
    assert str(policy_file) in line and "unknown entity" in line and "fix:" in line


def test_duplicate_rule_id_across_files(capsys, rules_dir, policy_file):
    original = yaml.safe_load((rules_dir / "contact.yaml").read_text())
    duplicate = next(r for r in original["rules"] if r["id"] == "email-address")
    (rules_dir / "zz-team.yaml").write_text(yaml.safe_dump({"rules": [duplicate]}, sort_keys=False))
    code, output = check(capsys, rules_dir, policy_file)
    assert code != 0
    line = next(line for line in output.splitlines() if "duplicate" in line)
    assert "email-address" in line and "contact.yaml" in line and "zz-team.yaml" in line and "fix:" in line


def test_rule_whose_own_example_fails(capsys, rules_dir, policy_file):
    path = edit_rule(rules_dir, "identity.yaml", "us-ssn",
                     lambda rule: rule["examples"]["match"].append("ssn is 123 45 67890 12"))
    code, output = check(capsys, rules_dir, policy_file)
    assert code != 0
    line = next(line for line in output.splitlines() if "us-ssn" in line and "example" in line)
    assert str(path) in line and "fix:" in line


def test_every_problem_is_reported_not_just_the_first(capsys, rules_dir, policy_file):
    edit_rule(rules_dir, "financial.yaml", "credit-card", lambda rule: rule.update(validator="nope"))
    edit_rule(rules_dir, "cloud.yaml", "npm-token", lambda rule: rule["patterns"][0].update(regex="(unclosed"))
    code, output = check(capsys, rules_dir, policy_file)
    assert code != 0
    assert "credit-card" in output and "npm-token" in output
