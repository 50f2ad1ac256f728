"""The scan pool under a hostile message: other people's messages still go through, the runaway scan is really
stopped (its worker process is killed and replaced), and a full lane refuses at once with `pii_scan_busy`.

The hostile message is the one from the review: 50 blocks of 20k characters of names and places, so NER alone
needs tens of CPU seconds. Workers are forked from this test process and share the session's scanner.
"""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from slack_pii.services import SERVICES
from tests.support.waiting import until
from tests.factories import CARD, SSN, section
from tests.slack_double import double, proxy_settings, start_proxy  # noqa: F401 - fixtures

HOSTILE_BLOCKS = [section(("Jane Doe met Bob Smith in Paris. " * 700)[:20_000]) for _ in range(50)]
DEADLINE_SECONDS = 120.0  # generous: the machine is shared; every wait below ends on an outcome long before


def client_for(server) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-pool", base_url=str(server.make_url("/api/")), timeout=DEADLINE_SECONDS)


def sample(server, name: str, **labels) -> float:
    return server.app[SERVICES].metrics.registry.get_sample_value(name, labels) or 0


@pytest.fixture
async def make_proxy(proxy_settings, scanner):
    started = []

    async def make(**changes):
        server = await start_proxy(proxy_settings.model_copy(update=changes), scanner)
        started.append(server)
        return server

    yield make
    for server in started:
        await server.close()


async def test_a_hostile_message_neither_refuses_others_nor_keeps_its_worker(make_proxy, double):
    server = await make_proxy(scan_workers=2, scan_cpu_seconds=0.5, scan_timeout_seconds=DEADLINE_SECONDS)
    pool = server.app[SERVICES].scan_pool
    before = set(pool.worker_pids())
    client = client_for(server)

    hostile = asyncio.create_task(client.chat_postMessage(channel="C0EVIL", text="hi", blocks=HOSTILE_BLOCKS))
    await until(lambda: pool.busy_workers == 1, DEADLINE_SECONDS, "the hostile message to reach a worker",
                every=0.01)
    normal = [client.chat_postMessage(channel=f"C0N{i}", text=f"card {CARD}" if i % 2 else "lunch at noon?")
              for i in range(8)]
    answers = await asyncio.gather(*normal)

    assert all(answer["ok"] for answer in answers)  # none refused, none failed
    posted = {r.args()["channel"]: r.args()["text"] for r in double.received("chat.postMessage")}
    assert posted["C0N0"] == "lunch at noon?" and CARD not in posted["C0N1"] and posted["C0N1"].endswith("1111")
    with pytest.raises(SlackApiError) as raised:
        await hostile
    assert raised.value.response["error"] == "pii_scan_failed"
    assert "C0EVIL" not in posted and len(double.received("chat.postMessage")) == 8
    [failed] = [row for row in await server.app[SERVICES].store.audit_events() if row["name"] == "scan_failed"]
    assert failed["detail"]["reason"] == "cpu_budget"

    # Its worker was killed and replaced; the pool is whole again and scans as before.
    assert sample(server, "slack_pii_scan_workers_replaced_total", reason="cpu_budget") == 1
    after = set(pool.worker_pids())
    assert len(after) == len(before) == 3 and len(after - before) == 1  # two ordinary workers, one for large jobs
    again = await client.chat_postMessage(channel="C0LATER", text=f"ssn {SSN}")
    assert again["ok"] and SSN not in double.received("chat.postMessage")[-1].args()["text"]


async def test_a_full_lane_refuses_at_once_with_pii_scan_busy_and_ordinary_messages_still_pass(make_proxy, double):
    # No waiting room at all: the one large-message worker is taken by the first hostile message.
    server = await make_proxy(scan_workers=1, scan_queue_depth=0, scan_cpu_seconds=2,
                              scan_timeout_seconds=DEADLINE_SECONDS)
    pool = server.app[SERVICES].scan_pool
    client = client_for(server)
    hostile = asyncio.create_task(client.chat_postMessage(channel="C0EVIL", text="hi", blocks=HOSTILE_BLOCKS))
    try:
        await until(lambda: pool.busy_workers == 1, DEADLINE_SECONDS,
                    "the hostile message to take the large-message worker", every=0.01)
        with pytest.raises(SlackApiError) as raised:
            await client.chat_postMessage(channel="C0EVIL2", text=f"card {CARD}", blocks=HOSTILE_BLOCKS)
        response = raised.value.response
        assert (response.status_code, response["error"]) == (503, "pii_scan_busy")
        assert response.headers["Retry-After"] == "1"
        assert CARD not in str(response.data)
        assert sample(server, "slack_pii_scan_refused_total", reason="busy") == 1

        ordinary = await client.chat_postMessage(channel="C0N1", text=f"card {CARD}")
        assert ordinary["ok"]
        [posted] = double.received("chat.postMessage")
        assert posted.args()["channel"] == "C0N1" and CARD not in posted.args()["text"]
    finally:
        hostile.cancel()
