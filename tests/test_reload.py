"""Hot reload: a policy edit takes effect in a running proxy, a broken edit is refused and logged, SIGHUP reloads.

The proxy runs on a copy of the shipped recognizers in tmp_path, so editing it never touches the repository.
Waits are bounded polls on /readyz (what an operator would watch), never sleeps that assume a speed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from slack_pii.services import SERVICES
from slack_pii.config import Settings
from slack_pii.detect.policy import DEFAULT_POLICY_FILE
from slack_pii.detect.rules import DEFAULT_RULES_DIR, PLACEHOLDERS_FILE
from tests.conftest import TEST_KEY
from tests.factories import EMAIL
from tests.slack_double import double, start_proxy  # noqa: F401 - fixture

# Compiling a changed rule set is slow on a loaded 2-core CI box; the bound is generous, the poll is fast.
DEADLINE_SECONDS = 240


@pytest.fixture
def config_dir(tmp_path) -> Path:
    """An editable copy of the shipped rules, placeholders and policy."""
    root = tmp_path / "recognizers"
    shutil.copytree(DEFAULT_RULES_DIR, root / "rules")
    shutil.copy(PLACEHOLDERS_FILE, root / "placeholders.yaml")
    shutil.copy(DEFAULT_POLICY_FILE, root / "policy.yaml")
    return root


def settings_for(tmp_path, config_dir, double, **extra) -> Settings:
    return Settings(data_dir=tmp_path / "data", secret_key=TEST_KEY, upstream_url=double.api_url,
                    webhook_upstream_url=double.base_url, recognizers_dir=config_dir / "rules",
                    policy_file=config_dir / "policy.yaml", **extra)


async def readyz(server) -> dict:
    async with aiohttp.ClientSession() as session, session.get(server.make_url("/readyz")) as response:
        return await response.json()


async def post(server, text: str) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.post(server.make_url("/api/chat.postMessage"), json={"channel": "C0RELOAD", "text": text},
                                headers={"Authorization": "Bearer xoxb-test"}) as response:
            return await response.json()


async def wait_for(predicate, what: str):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {DEADLINE_SECONDS} s waiting for {what}")


def block_emails(policy_file: Path) -> None:
    """The edit a security team makes: e-mail addresses go from warn to block."""
    text = policy_file.read_text()
    assert "EMAIL_ADDRESS: block" not in text
    policy_file.write_text(text.replace("entities:\n", "entities:\n  EMAIL_ADDRESS: block\n", 1))


async def test_policy_edit_is_picked_up_by_the_watcher(tmp_path, config_dir, double, scanner):
    server = await start_proxy(settings_for(tmp_path, config_dir, double), scanner)
    try:
        before = await readyz(server)
        first = await post(server, f"mail me at {EMAIL}")
        assert first["ok"] is True  # warn: forwarded
        assert len(double.received("chat.postMessage")) == 1

        block_emails(config_dir / "policy.yaml")

        async def new_version():
            body = await readyz(server)
            return body if body["config_version"] != before["config_version"] else None

        after = await wait_for(new_version, "/readyz to report the edited policy's version")
        assert after["config"]["reloads"] == 1 and after["config"]["rejected"] == 0
        assert after["config_version"].endswith(after["config"]["policy_version"])
        second = await post(server, f"mail me at {EMAIL}")
        assert second["ok"] is False and second["error"] == "pii_blocked"
        assert len(double.received("chat.postMessage")) == 1  # the blocked message never reached Slack
        events = await server.app[SERVICES].store.audit_events()
        assert [e["config_version"] for e in events] == [before["config_version"], after["config_version"]]
    finally:
        await server.close()


async def test_broken_rule_file_is_refused_and_the_running_config_stays(tmp_path, config_dir, double, scanner,
                                                                      caplog):
    caplog.set_level(logging.INFO, logger="slack_pii.reload")
    server = await start_proxy(settings_for(tmp_path, config_dir, double), scanner)
    try:
        before = await readyz(server)
        (config_dir / "rules" / "broken.yaml").write_text(
            "rules:\n  - id: team-ticket\n    entity: TICKET_ID\n    category: personal\n"
            "    patterns:\n      - name: ticket (weak)\n        regex: 'TCK-(\\d+'\n        score: 0.4\n")

        async def rejected():
            body = await readyz(server)
            return body if body["config"]["rejected"] else None

        after = await wait_for(rejected, "the broken rule file to be rejected")
        assert after["config_version"] == before["config_version"]
        assert after["config"]["reloads"] == 0
        lines = [r.getMessage() for r in caplog.records if r.name == "slack_pii.reload"]
        problem = next(line for line in lines
                       if line.startswith("config reload rejected:") and "broken.yaml" in line)
        assert "rule `team-ticket`" in problem and "fix:" in problem, problem
        assert any("REJECTED" in line and before["config_version"] in line for line in lines)
        # The old config still decides: e-mail is still a warning, and the message is forwarded.
        reply = await post(server, f"mail me at {EMAIL}")
        assert reply["ok"] is True
        assert double.received("chat.postMessage")[-1].args()["text"] == f"mail me at {EMAIL}"
        assert server.app[SERVICES].scanner_slot.current.engine is scanner.engine
    finally:
        await server.close()


async def test_sighup_reloads_through_the_signal_handler(tmp_path, config_dir, double, scanner):
    """The real signal, delivered to this process, with the file watcher off (only SIGHUP can reload)."""
    server = await start_proxy(settings_for(tmp_path, config_dir, double, watch_config=False), scanner)
    try:
        watcher = server.app[SERVICES].watcher
        assert watcher._signal_installed, "SIGHUP handler not installed (sending SIGHUP would kill the test run)"
        before = await readyz(server)
        assert [t.get_name() for t in watcher._tasks if t.get_name() == "config-watcher"] == []  # no file watcher
        block_emails(config_dir / "policy.yaml")
        assert (await readyz(server))["config_version"] == before["config_version"]

        os.kill(os.getpid(), signal.SIGHUP)

        async def new_version():
            body = await readyz(server)
            return body if body["config_version"] != before["config_version"] else None

        await wait_for(new_version, "SIGHUP to reload the policy")
        assert (await post(server, f"mail me at {EMAIL}"))["error"] == "pii_blocked"
    finally:
        await server.close()


async def test_reload_entry_point_reports_unchanged_bad_and_good_configs(tmp_path, config_dir, double, scanner):
    server = await start_proxy(settings_for(tmp_path, config_dir, double, watch_config=False), scanner)
    try:
        watcher, slot = server.app[SERVICES].watcher, server.app[SERVICES].scanner_slot
        running = slot.current
        unchanged = await watcher.reload("test")
        assert unchanged.ok and not unchanged.changed and slot.current is running

        policy = config_dir / "policy.yaml"
        good = policy.read_text()
        policy.write_text(good.replace("entities:\n", "entities:\n  NOT_AN_ENTITY: block\n", 1))
        bad = await watcher.reload("test")
        assert not bad.ok and slot.current is running
        assert any("unknown entity 'NOT_AN_ENTITY'" in p and "policy.yaml" in p for p in bad.problems)

        policy.write_text(good.replace("entities:\n", "entities:\n  EMAIL_ADDRESS: block\n", 1))
        ok = await watcher.reload("test")
        assert ok.ok and ok.changed and slot.current is not running
        assert slot.current.engine is running.engine  # rules untouched: the compiled engine is reused
        assert slot.current.scan(f"mail me at {EMAIL}").verdict == "block"
    finally:
        await server.close()
