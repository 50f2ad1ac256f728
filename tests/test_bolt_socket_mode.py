"""Socket Mode: with SLACK_APP_TOKEN the app opens a websocket (found through apps.connections.open on the
configured upstream), acks each envelope and acts on it exactly like an HTTP delivery."""

from __future__ import annotations

import asyncio
import json

import pytest

from slack_pii.slackapp import blocks
from tests.bolt_support import USER, buttons, event_body, message_event, start_harness, stop_harness
from tests.factories import SSN
from tests.fake_socket_mode import FakeSocketMode
from tests.slack_double import SlackDouble

APP_TOKEN = "xapp-1-A0APP-1234567890-0123456789abcdef0123456789abcdef"
SAFETY_NET_SECONDS = 30  # only bounds a broken run; nothing waits for it when things work


@pytest.fixture
async def socket_harness(tmp_path, scanner):
    double = SlackDouble()
    fake = FakeSocketMode(double)
    harness = await start_harness(tmp_path, scanner, double=double, before_start=fake.script_connections_open,
                                  slack_app_token=APP_TOKEN, slack_signing_secret=None)
    yield harness, fake
    await stop_harness(harness)


async def test_socket_mode_receives_an_event_acks_it_and_warns_the_sender(socket_harness):
    h, fake = socket_harness
    opened = h.double.received("apps.connections.open")
    assert len(opened) == 1 and opened[0].headers["Authorization"] == f"Bearer {APP_TOKEN}"
    assert fake.connections == 1
    # HTTP mode is off without a signing secret: no public endpoint at all
    assert (await h.session.post(h.url, data=b"{}")).status in (404, 405)

    fake.deliver("env-1", "events_api", json.loads(event_body(message_event(f"SSN {SSN}"), event_id="Ev0SOCK1")))
    await asyncio.wait_for(fake.acked.wait(), SAFETY_NET_SECONDS)
    await h.settle()
    assert fake.acks[0]["envelope_id"] == "env-1"
    warning = h.calls("chat.postEphemeral")
    assert len(warning) == 1 and warning[0]["user"] == USER
    assert set(buttons(warning[0])) == {blocks.REDACT_MINE, blocks.DELETE_MINE, blocks.NOT_SENSITIVE}

    # Slack redelivers an envelope it thinks was lost: same event id, no second warning
    fake.acked.clear()
    fake.deliver("env-2", "events_api", json.loads(event_body(message_event(f"SSN {SSN}"), event_id="Ev0SOCK1")))
    await asyncio.wait_for(fake.acked.wait(), SAFETY_NET_SECONDS)
    await h.settle()
    assert len(h.calls("chat.postEphemeral")) == 1
