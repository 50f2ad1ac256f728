"""README and --help stay true to the code: every setting is documented in both."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from slack_pii.config import settings_help, settings_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_in_help():
    result = subprocess.run([sys.executable, "-m", "slack_pii", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for env, _, _ in settings_help():
        assert env in result.stdout, env


def test_readme_settings_table_matches_the_code():
    text = README.read_text()
    block = re.search(r"<!-- settings-table:start -->\n(.*?)\n?<!-- settings-table:end -->", text, re.S)
    assert block, "README lost its settings table markers"
    assert block.group(1).strip() == settings_markdown().strip(), (
        "README settings table is stale: regenerate it with `python -m slack_pii.config`")


def test_readme_first_screen_has_the_two_commands():
    first_screen = "\n".join(README.read_text().splitlines()[:25])
    assert "make run" in first_screen and "make test" in first_screen
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci
