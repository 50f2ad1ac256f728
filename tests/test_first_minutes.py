"""The first five minutes of a new user: the README's Try-it block as pasted, `serve` saying when it answers,
`make wait`, and `scan` saying what it waits for when stdin is a terminal."""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
DEADLINE_SECONDS = 180  # a loaded CI machine; the outcome is waited on, never a quiet period


def _sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_the_try_it_block_waits_for_readiness_before_its_first_request():
    section = README.split("## Try it in a minute", 1)[1].split("\n## ", 1)[0]
    lines = [line.split("#")[0].strip() for line in _sh_blocks(section)[0].splitlines()]
    commands = [line for line in lines if line]
    assert commands[0] == "make run &"
    assert commands.index("make wait") < next(i for i, c in enumerate(commands) if c.startswith("curl"))
    # Before anyone activates the virtualenv, the block can only use the venv's own entry point.
    assert all(c.startswith(".venv/bin/slack-pii") for c in commands if "slack-pii" in c)


def test_every_readme_command_after_the_activation_note_is_consistent():
    before, after = README.split(". .venv/bin/activate", 1)
    assert not [line for block in _sh_blocks(before) for line in block.splitlines()
                if re.match(r"\s*slack-pii\b", line)], "bare slack-pii before the README says to activate .venv"
    assert not [line for block in _sh_blocks(after) for line in block.splitlines() if ".venv/bin/slack-pii" in line]


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_PII_", "SLACK_"))}
    return {**env, "SLACK_PII_DATA_DIR": str(tmp_path), "SLACK_PII_SECRET_KEY": "cd" * 32, "SLACK_PII_NER": "false",
            "SLACK_PII_WATCH_CONFIG": "false", "SLACK_PII_LOG_LEVEL": "WARNING"}


def test_serve_prints_ready_with_its_start_up_time_once_it_answers_and_make_wait_returns(tmp_path):
    proxy = subprocess.Popen([sys.executable, "-m", "slack_pii", "serve", "--port", "0"], cwd=tmp_path,
                             env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        seen = []
        while time.monotonic() < deadline:
            line = proxy.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("ready on"):
                break
        ready = re.fullmatch(r"ready on (http://127\.0\.0\.1:\d+) \((\d+\.\d) s\)\n", seen[-1] if seen else "")
        assert ready, seen
        url = ready.group(1)
        with urllib.request.urlopen(url + "/healthz", timeout=30) as answer:  # answers from that line on
            assert answer.status == 200
        if shutil.which("make") and shutil.which("curl"):
            waited = subprocess.run(["make", "-s", "wait", f"URL={url}"], cwd=REPO, capture_output=True, text=True,
                                    timeout=DEADLINE_SECONDS)
            assert waited.returncode == 0, waited.stdout + waited.stderr
            assert f"{url} is ready" in waited.stdout
    finally:
        proxy.terminate()
        proxy.wait(timeout=60)
        proxy.stdout.close()


def test_scan_with_a_terminal_on_stdin_says_what_it_is_waiting_for(tmp_path):
    controller, terminal = pty.openpty()
    try:
        scan = subprocess.Popen([sys.executable, "-m", "slack_pii", "scan", "--no-ner"], cwd=tmp_path,
                                env=_env(tmp_path), stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        os.write(controller, b"nothing to see here\n\x04")  # a line, then Ctrl-D
        out, err = scan.communicate(timeout=DEADLINE_SECONDS)
    finally:
        os.close(controller)
        os.close(terminal)
    assert "reading the message" in err and "Ctrl-D" in err
    assert "No findings." in out


@pytest.mark.parametrize("argv", [["scan", "hello"], ["scan", "--json", "hello"]])
def test_scan_with_an_argument_or_piped_stdin_prints_no_prompt(tmp_path, argv):
    done = subprocess.run([sys.executable, "-m", "slack_pii", *argv, "--no-ner"], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=DEADLINE_SECONDS, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert "reading" not in done.stderr
