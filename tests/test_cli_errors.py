"""Errors a person can act on: one line on stderr naming the setting or file and the fix, exit 2, no traceback
(`--debug` shows it); `scan` exits by verdict for pre-commit hooks and CI; /readyz really asks the upstream."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from slack_pii.config import Settings
from tests.conftest import TEST_KEY
from tests.factories import CARD
from tests.slack_double import start_proxy

TIMEOUT = 300  # a loaded machine; the outcome is waited on


def run(tmp_path: Path, *argv: str, env: dict | None = None, stdin: str = "") -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    base.update(SLACK_PII_DATA_DIR=str(tmp_path / "data"), SLACK_PII_NER="false", SLACK_PII_WATCH_CONFIG="false")
    return subprocess.run([sys.executable, "-m", "slack_pii", *argv], cwd=tmp_path, env={**base, **(env or {})},
                          input=stdin, capture_output=True, text=True, timeout=TIMEOUT)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1, result.stderr
    assert "fix:" in lines[0]
    return lines[0]


@pytest.fixture
def taken_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_already_in_use_names_the_setting_and_the_fix(tmp_path, taken_port):
    line = one_error_line(run(tmp_path, "serve", "--port", str(taken_port)))
    assert f"127.0.0.1:{taken_port} is already in use" in line and "SLACK_PII_PORT" in line and "--port" in line


@pytest.mark.parametrize("env, argv, names", [
    ({"SLACK_PII_PORT": "abc"}, ["serve"], "SLACK_PII_PORT"),
    ({"SLACK_PII_NER": "perhaps"}, ["scan", "hello"], "SLACK_PII_NER"),
    ({"SLACK_PII_LOG_FORMAT": "xml"}, ["serve"], "SLACK_PII_LOG_FORMAT"),
    ({"SLACK_PII_SECRET_KEY": "too-short"}, ["scan", "hello"], "SLACK_PII_SECRET_KEY"),
    ({"SLACK_PII_SECRET_KEY": "ab" * 8}, ["serve"], "SLACK_PII_SECRET_KEY"),
])
def test_a_bad_setting_is_one_line_naming_it(tmp_path, env, argv, names):
    line = one_error_line(run(tmp_path, *argv, env=env))
    assert names in line
    assert all(value not in line for value in env.values())  # the value itself is never echoed (it may be a key)


def test_a_missing_or_unknown_config_file_key_names_the_file(tmp_path):
    line = one_error_line(run(tmp_path, "--config", "missing.yaml", "scan", "hello"))
    assert "missing.yaml" in line and "--config" in line
    (tmp_path / "settings.yaml").write_text("prot: 8081\n")
    line = one_error_line(run(tmp_path, "--config", "settings.yaml", "scan", "hello"))
    assert "settings.yaml" in line and "prot" in line


def test_missing_input_files_name_the_file(tmp_path):
    line = one_error_line(run(tmp_path, "check-config", "--policy", "no-such-policy.yaml"))
    assert "no-such-policy.yaml" in line


@pytest.mark.parametrize("argv", [["scan", "--bogus"], ["--nope"], ["serve", "--port", "eighty"]])
def test_an_unknown_or_bad_option_is_one_line(tmp_path, argv):
    result = run(tmp_path, *argv)
    line = one_error_line(result)
    assert "--help" in line and "usage:" not in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = run(tmp_path, "--debug", "serve", env={"SLACK_PII_PORT": "abc"})
    assert result.returncode == 2 and "Traceback" in result.stderr and "SLACK_PII_PORT" in result.stderr


@pytest.mark.parametrize("text, verdict, code", [
    ("lunch at noon?", "allow", 0),
    ("mail jane.doe@acme-corp.com", "warn", 0),
    (f"card {CARD}", "redact", 3),
    ("key AKIALALEMEL33243OLIB", "block", 4),
])
def test_scan_exits_by_verdict(tmp_path, text, verdict, code):
    result = run(tmp_path, "scan", "--json", text)
    assert result.returncode == code, result.stderr
    assert f'"verdict": "{verdict}"' in result.stdout


def test_scan_of_unparseable_json_on_stdin_is_an_error(tmp_path):
    one_error_line(run(tmp_path, "scan", stdin='{"text": '))


async def test_readyz_says_not_ready_when_the_upstream_cannot_be_reached(tmp_path, scanner):
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = Settings(data_dir=tmp_path, secret_key=TEST_KEY, upstream_url=dead + "/api/",
                            webhook_upstream_url=dead, watch_config=False)
        server = await start_proxy(settings, scanner)
        try:
            async with aiohttp.ClientSession() as session, session.get(server.make_url("/readyz")) as response:
                status, body = response.status, await response.json()
        finally:
            await server.close()
    assert status == 503 and body["ok"] is False
    assert body["checks"] == {"engine": True, "store": True, "upstream": False}
    assert "api.test" in body["upstream_problem"]
