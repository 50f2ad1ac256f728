"""Two real `slack-pii serve` processes sharing one PostgreSQL database, as replicas behind a load balancer.

Slack (the double, in this process) may deliver any event, retry or click to either replica. The exactly-once
tests stop both replicas before counting: a stopped replica has drained every listener it started, so the
counts are final, with no waiting for a quiet period.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from slack_pii.keys import fingerprint
from slack_pii.slackapp import blocks
from slack_pii.slackapp.oauth import STATE_COOKIE
from slack_pii.store import open_url
from tests.bolt_support import (BOT_TOKEN, BOT_USER, SECRET, TEAM, USER, block_action, buttons, command_body,
                                event_body, interactive_body, message_event, signed_headers)
from tests.support.waiting import until
from tests.conftest import TEST_KEY, TEST_KEYS
from tests.factories import CARD, EMAIL, SSN
from tests.slack_double import SlackDouble

pytestmark = pytest.mark.slow

START_DEADLINE = 240.0  # two processes loading the engine on a loaded 2-core machine
ALLOW_DEADLINE = 2.0  # the promise: `feedback allow` on one replica is in force on all within 2 s
CLIENT_ID, CLIENT_SECRET = "1234567890.0987654321", "c1ient5ecret0f7heapp000000000000"
USER_TOKEN = "xoxp-17653672481-2222-3333-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
ORIGINAL = f"refund card {CARD} for jane, SSN {SSN}"
FORM = "application/x-www-form-urlencoded"


@dataclass
class Replica:
    process: asyncio.subprocess.Process
    base_url: str
    log: Path

    @property
    def events_url(self) -> str:
        return self.base_url + "/slack/events"

    async def stop(self) -> int:
        """SIGTERM, then wait: serve drains in-flight listeners before it exits."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 120)


def replica_env(tmp_path: Path, name: str, database_url: str, double: SlackDouble, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SLACK_PII_"))}
    env.update(SLACK_PII_DATABASE_URL=database_url, SLACK_PII_SECRET_KEY=TEST_KEY,
               SLACK_PII_DATA_DIR=str(tmp_path / name), SLACK_PII_UPSTREAM_URL=double.api_url,
               SLACK_PII_WEBHOOK_UPSTREAM_URL=double.base_url, SLACK_BOT_TOKEN=BOT_TOKEN,
               SLACK_SIGNING_SECRET=SECRET, SLACK_PII_NER="false", SLACK_PII_WATCH_CONFIG="false",
               SLACK_PII_LOG_LEVEL="INFO", **extra)
    return env


async def start_replica(tmp_path: Path, name: str, env: dict) -> Replica:
    log = tmp_path / f"{name}.log"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "slack_pii", "serve", "--host", "127.0.0.1", "--port", "0", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=log.open("wb"))
    try:
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), START_DEADLINE)).decode()
            if not line:
                raise AssertionError(f"replica {name} exited: {log.read_text()[-2000:]}")
            if " listening on " in line:
                return Replica(process, line.split(" listening on ")[1].split()[0], log)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise


@pytest.fixture
async def double():
    started = await SlackDouble().start()
    started.answer("auth.test", json_body={"ok": True, "user_id": BOT_USER, "bot_id": "B0BOT", "team_id": TEAM,
                                           "user": "send-safely", "team": "Test"}, times=50)
    yield started
    await started.stop()


@pytest.fixture
async def replicas(tmp_path, pg_url, double):
    # NOTE: the OAuth client settings go in the YAML file: as SLACK_CLIENT_ID/SECRET environment variables
    # slack_bolt itself picks them up and switches to per-workspace installations, ignoring SLACK_BOT_TOKEN.
    config = tmp_path / "oauth.yaml"
    config.write_text(f"slack_client_id: '{CLIENT_ID}'\nslack_client_secret: '{CLIENT_SECRET}'\n")
    env = {name: replica_env(tmp_path, name, pg_url, double, SLACK_PII_CONFIG_FILE=str(config))
           for name in ("a", "b")}
    started = await asyncio.gather(*(start_replica(tmp_path, name, env[name]) for name in ("a", "b")),
                                   return_exceptions=True)
    running = [r for r in started if isinstance(r, Replica)]
    try:
        for result in started:
            if isinstance(result, BaseException):
                raise result
        yield running
    finally:
        for replica in running:
            await replica.stop()


async def cli(env: dict, *argv: str, stdin: str = "") -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "slack_pii", *argv, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(stdin.encode()), 120)
    return process.returncode, out.decode()


async def test_retries_and_racing_clicks_act_exactly_once_across_replicas(replicas, double):
    a, b = replicas
    response_url = f"{double.base_url}/services/response/{TEAM}/1"
    async with aiohttp.ClientSession() as session:
        # Slack retries one event (a new signature each time), delivered to both replicas at once.
        body = event_body(message_event(f"my card is {CARD}"), event_id="Ev0RETRIED1")
        now = int(time.time())
        answers = await asyncio.gather(*(
            session.post(replica.events_url, data=body.encode(),
                         headers={**signed_headers(body, timestamp=now - i), "X-Slack-Retry-Num": str(i)})
            for i, replica in enumerate([a, b] * 6)))
        assert [r.status for r in answers] == [200] * 12

        # A message held on A ...
        command = command_body(ORIGINAL, response_url=response_url)
        assert (await session.post(a.events_url, data=command.encode(),
                                   headers=signed_headers(command, content_type=FORM))).status == 200

        async def preview():
            found = [buttons(r.args()) for r in double.received("chat.postEphemeral")]
            return next((f[blocks.SEND_REDACTED] for f in found if blocks.SEND_REDACTED in f), None)

        held = await until(preview, 60, "the held message's preview")
        # ... and ten clicks on "Send redacted", racing on both replicas.
        clicks = []
        for replica in [a, b] * 5:
            click = interactive_body(block_action(blocks.SEND_REDACTED, held, response_url=response_url))
            clicks.append(session.post(replica.events_url, data=click.encode(),
                                       headers=signed_headers(click, content_type=FORM)))
        assert {r.status for r in await asyncio.gather(*clicks)} == {200}

    assert [await r.stop() for r in replicas] == [0, 0]  # drained: every listener has finished
    posted = [r.args() for r in double.received("chat.postMessage")]
    assert len(posted) == 1, posted
    assert posted[0]["text"].startswith("refund card ") and CARD not in posted[0]["text"]
    ephemeral = [buttons(r.args()) for r in double.received("chat.postEphemeral")]
    assert len(ephemeral) == 2  # one preview for the command, one warning for the retried event
    assert sum(blocks.REDACT_MINE in e for e in ephemeral) == 1
    for replica in replicas:
        assert CARD not in replica.log.read_text()


async def test_allow_list_oauth_and_audit_are_shared_across_replicas(replicas, double, tmp_path, pg_url):
    a, b = replicas
    env = replica_env(tmp_path, "cli", pg_url, double)
    async with aiohttp.ClientSession() as session:
        # OAuth: the browser starts on A, Slack sends it back to B; the state then cannot be used again on A.
        install = await session.get(a.base_url + "/slack/install", allow_redirects=False)
        state = parse_qs(urlsplit(install.headers["Location"]).query)["state"][0]
        cookie = {"Cookie": f"{STATE_COOKIE}={install.cookies[STATE_COOKIE].value}"}
        double.answer("oauth.v2.access", json_body={
            "ok": True, "app_id": "A0APP", "team": {"id": TEAM}, "scope": "", "token_type": "bot",
            "authed_user": {"id": USER, "scope": "chat:write", "access_token": USER_TOKEN, "token_type": "user"}})
        query = {"state": state, "code": "1234.5678.code"}
        on_b = await session.get(b.base_url + "/slack/oauth_redirect", params=query, headers=cookie)
        assert on_b.status == 200, await on_b.text()
        replay = await session.get(a.base_url + "/slack/oauth_redirect", params=query, headers=cookie)
        assert replay.status == 400 and "already used" in await replay.text()

        # The allow-list: a report and an allow on the command line reach both running replicas.
        async def allowed_on(replica):
            async with session.get(replica.base_url + "/readyz") as response:
                return (await response.json())["config"]["allow_fingerprints"] >= 1

        assert not await allowed_on(a) and not await allowed_on(b)
        code, out = await cli(env, "feedback", "add", "--rule", "email-address", "--entity", "EMAIL_ADDRESS",
                              "--value-from-stdin", stdin=EMAIL + "\n")
        assert code == 0, out
        code, out = await cli(env, "feedback", "allow", fingerprint(EMAIL, TEST_KEYS.fingerprints))
        assert code == 0 and "allow-listed" in out, out
        await until(lambda: allowed_on(a), ALLOW_DEADLINE, "allow-list in force on replica A")
        await until(lambda: allowed_on(b), ALLOW_DEADLINE, "allow-list in force on replica B")

        # One audit trail: each replica records what it scanned in the shared database.
        for replica, channel in ((a, "C0ONA"), (b, "C0ONB")):
            async with session.post(replica.base_url + "/api/chat.postMessage",
                                    json={"channel": channel, "text": f"write to {EMAIL}"},
                                    headers={"Authorization": f"Bearer {BOT_TOKEN}"}) as response:
                assert (await response.json())["ok"] is True
        # ... and the dashboard on A shows what B redacted.
        async with session.post(b.base_url + "/api/chat.postMessage", json={"channel": "C0REDB",
                                                                            "text": f"card {CARD}"},
                                headers={"Authorization": f"Bearer {BOT_TOKEN}"}) as response:
            assert (await response.json())["ok"] is True
        async with session.get(a.base_url + "/dashboard") as response:
            page = await response.text()
            assert response.status == 200 and "C0REDB" in page and CARD not in page

    code, out = await cli(env, "audit", "--format", "jsonl")
    assert code == 0, out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    scanned = {e["channel"]: e["action"] for e in events if e["method"] == "chat.postMessage"}
    assert scanned == {"C0ONA": "allow", "C0ONB": "allow", "C0REDB": "redact"}  # both replicas' events
    assert any(e["name"] == "user_authorised" for e in events)
    store = await open_url(pg_url, TEST_KEYS.at_rest)
    try:
        assert await store.user_token(USER) == USER_TOKEN
        [row] = await store._rows("SELECT ciphertext FROM user_tokens")
        assert USER_TOKEN.encode() not in bytes(row["ciphertext"])
    finally:
        await store.close()
    for text in (out, *(r.log.read_text() for r in replicas)):
        assert EMAIL not in text and USER_TOKEN not in text and CARD not in text
