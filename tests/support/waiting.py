"""Wait on an outcome, never on a quiet period: poll until it holds, fail naming it after a deadline."""

from __future__ import annotations

import asyncio
import inspect


async def until(check, deadline_seconds: float, what: str, *, every: float = 0.05):
    """Poll `check()` (plain or async) until it returns something truthy, and return that; fail naming `what`
    after `deadline_seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_seconds
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert loop.time() < deadline, f"not within {deadline_seconds:.0f} s: {what}"
        await asyncio.sleep(every)
