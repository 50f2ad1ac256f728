"""The short fuzz profile (the long one is `bench/fuzz.py --count 10000`): generated Slack requests with canaries,
in every encoding and with parser differentials, against the real server and the recording Slack double."""

from __future__ import annotations

import logging

import aiohttp

from slack_pii.logs import JsonFormatter
from tests.fuzz.cases import generate
from tests.fuzz.harness import check_at_rest, check_upstream, run
from tests.slack_double import double, proxy, proxy_settings  # noqa: F401 - fixtures

SHORT_PROFILE = 80  # cases: well under 30 s on a loaded 2-core machine


async def test_short_fuzz_profile_leaks_nothing_and_never_fails(proxy, double, proxy_settings, caplog):
    caplog.set_level(logging.DEBUG)
    cases = generate(SHORT_PROFILE, seed=15, allow_huge=False)
    report = await run(cases, str(proxy.make_url("")).rstrip("/"), concurrency=4)
    check_upstream(double.requests, report)
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.make_url("/metrics")) as response:
            metrics = await response.text()
    formatter = JsonFormatter()
    logs = "\n".join(formatter.format(r) for r in caplog.records if r.name != "aiohttp.access")
    check_at_rest(logs, proxy_settings.data_dir, metrics, report)
    assert report.sent >= len(cases) - sum(c.raw is not None for c in cases)
    assert report.problems == [] and report.five_xx == 0 and report.hangs == 0 and report.forwarded_canaries == 0
