"""At run time nothing but Slack is contacted: scanning works with networking unavailable, without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

GUARD = textwrap.dedent("""
    import os, socket
    _log = os.environ["NET_GUARD_LOG"]
    def _refuse(*args, **kwargs):
        with open(_log, "a") as handle:
            handle.write(repr(args[:2])[:200] + "\\n")
        raise OSError(101, "network is unreachable (test guard)")
    socket.socket.connect = _refuse
    socket.socket.connect_ex = _refuse
    socket.getaddrinfo = _refuse
    socket.create_connection = _refuse
""")


def _run_guarded(tmp_path: Path, args: list[str], stdin: str = "") -> tuple[subprocess.CompletedProcess, str]:
    (tmp_path / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "net.log"
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{Path.cwd()}", NET_GUARD_LOG=str(log),
               SLACK_PII_DATA_DIR=str(tmp_path / "data"), HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env, timeout=180)
    return result, log.read_text() if log.exists() else ""


def test_guard_really_blocks_the_network(tmp_path):
    result, attempts = _run_guarded(tmp_path, [sys.executable, "-c",
                                               "import socket\ntry:\n socket.create_connection(('127.0.0.1', 9))\nexcept OSError: pass"])
    assert result.returncode == 0 and attempts  # the guard records what it refused


def test_scan_with_email_and_urls_makes_no_network_call(tmp_path):
    text = "mail jane.doe@acme-corp.com, see https://status.example.co.uk/x and <https://a.io|a.io> from 10.1.2.3"
    result, attempts = _run_guarded(tmp_path, [sys.executable, "-m", "slack_pii", "scan", "--json", text])
    assert result.returncode == 0, result.stderr[-2000:]
    assert attempts == "", f"network was attempted: {attempts}"
    assert "Traceback" not in result.stderr
    record = json.loads(result.stdout)
    assert "EMAIL_ADDRESS" in {f["entity_type"] for f in record["findings"]}
