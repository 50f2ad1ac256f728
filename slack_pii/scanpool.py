"""Where scans run: one typed entry, `await pool.scan(payload, channel_id=...)`, shared by the Web API and the
Bolt app. The scanner in force is read from the slot per call, so a hot reload reaches the next scan."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from slack_pii.detect.scanner import Outcome
from slack_pii.reload import ScannerSlot


class ScanPool:
    def __init__(self, slot: ScannerSlot, *, timeout_seconds: float):
        self.slot = slot
        self.timeout_seconds = timeout_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan")

    async def scan(self, payload: Any, *, channel_id: str | None = None,
                   channel_name: str | None = None) -> Outcome:
        """The outcome; raises TimeoutError past the budget, or whatever detection raised."""
        scanner = self.slot.current
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, partial(scanner.scan, payload, channel_id=channel_id, channel_name=channel_name))
        return await asyncio.wait_for(future, timeout=self.timeout_seconds)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
