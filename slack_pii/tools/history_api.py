"""`history-scan`: the export scan's report, read through the Web API for workspaces without export rights.

conversations.list -> conversations.history (per conversation, cursor pages) -> conversations.replies (per thread)
through the configured upstream with slack_sdk's AsyncWebClient. Slack's 429s are honoured by the SDK's
RateLimitErrorRetryHandler (it sleeps Retry-After); besides that a pacer keeps each method under its tier's
per-minute budget, so a long scan rarely meets a 429 at all. One conversation is one checkpoint unit: a killed
scan resumes at the first conversation it had not finished (that conversation is read again from its start).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, time as clock_time, timedelta, timezone
from pathlib import Path

from slack_pii import messages
from slack_pii.tools.history import (Conversation, Filters, HistoryError, Options, Progress, ReportDir, Unit,
                                     UnitResult, keep_top, merge_stats, new_stats, poster_names, scan_messages)

# Calls per minute per method (Slack's tiers: conversations.list Tier 2, history/replies Tier 3, users.list Tier 2).
TIER_PER_MINUTE = {"conversations.list": 20, "conversations.history": 50, "conversations.replies": 50,
                   "users.list": 20, "auth.test": 100}
PAGE = 200
TYPES = "public_channel,private_channel,mpim,im"


class Pacer:
    """Spaces calls of one method at least 60/N seconds apart (N: its tier's per-minute budget)."""

    def __init__(self, per_minute: dict[str, int] | None, clock=time.monotonic, sleep=asyncio.sleep):
        self.per_minute, self.clock, self.sleep = per_minute or {}, clock, sleep
        self._last: dict[str, float] = {}

    async def wait(self, method: str) -> None:
        budget = self.per_minute.get(method)
        if budget:
            gap = 60.0 / budget - (self.clock() - self._last.get(method, float("-inf")))
            if gap > 0:
                await self.sleep(gap)
        self._last[method] = self.clock()


def web_client(settings, token: str):
    """An AsyncWebClient on the configured upstream that retries 429s (Retry-After) and refused connections."""
    from slack_sdk.http_retry.builtin_async_handlers import (AsyncConnectionErrorRetryHandler,
                                                             AsyncRateLimitErrorRetryHandler)
    from slack_sdk.web.async_client import AsyncWebClient

    if settings.uses_local_sink:
        raise HistoryError(messages.history_local_upstream())
    return AsyncWebClient(token=token, base_url=settings.effective_upstream_url,
                          timeout=int(settings.upstream_timeout_seconds),
                          retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=8),
                                          AsyncConnectionErrorRetryHandler(max_retry_count=2)])


class Reader:
    """Cursor-paginated reads, each paced and each failure turned into a one-line HistoryError."""

    def __init__(self, client, pacer: Pacer):
        self.client, self.pacer = client, pacer

    async def call(self, method: str, **args) -> dict:
        from slack_sdk.errors import SlackApiError

        await self.pacer.wait(method)
        try:
            response = await self.client.api_call(method, data=args)
        except SlackApiError as exc:
            raise HistoryError(messages.history_api_failed(method, str(exc.response.get("error")))) from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise HistoryError(messages.history_api_failed(method, type(exc).__name__)) from None
        return response.data

    async def pages(self, method: str, key: str, **args):
        cursor = ""
        while True:
            data = await self.call(method, **args, **({"cursor": cursor} if cursor else {}))
            yield data.get(key) or []
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                return


def conversation_of(channel: dict) -> Conversation:
    if channel.get("is_im"):
        return Conversation(channel["id"], channel.get("user") or channel["id"], "dm")
    if channel.get("is_mpim"):
        return Conversation(channel["id"], channel.get("name") or channel["id"], "mpim")
    kind = "private" if channel.get("is_private") or channel.get("is_group") else "public"
    return Conversation(channel["id"], channel.get("name") or channel["id"], kind)


def time_window(filters: Filters) -> dict:
    """conversations.history's oldest/latest for --since/--until (whole UTC days, inclusive)."""
    window = {}
    if filters.since:
        window["oldest"] = f"{datetime.combine(filters.since, clock_time(), timezone.utc).timestamp():.6f}"
    if filters.until:
        end = datetime.combine(filters.until + timedelta(days=1), clock_time(), timezone.utc)
        window["latest"] = f"{end.timestamp():.6f}"
    return window


async def scan_conversation(reader: Reader, scanner, conversation: Conversation, window: dict,
                            options: Options, page: int = PAGE) -> UnitResult:
    """Every message and thread reply of one conversation, scanned a history page at a time."""
    key = f"api:{conversation.id}"
    unit = UnitResult(key, stats=new_stats())
    started = time.perf_counter()
    seen: set[str] = set()  # NOTE: a reply "also sent to the channel" is in history and in its thread: scan it once
    async for listed in reader.pages("conversations.history", "messages", channel=conversation.id, limit=page,
                                     **window):
        batch = []
        for message in listed:
            batch += _unseen([message], seen)
            if message.get("reply_count") and message.get("thread_ts") == message.get("ts"):
                async for replies in reader.pages("conversations.replies", "messages", channel=conversation.id,
                                                  ts=message["ts"], limit=page):
                    batch += _unseen(replies, seen)
        part = scan_messages(scanner, conversation, batch, options, key)
        unit.findings += part.findings
        unit.plan += part.plan
        merge_stats(unit.stats, part.stats)
        unit.top = keep_top(unit.top + part.top)
    unit.seconds = time.perf_counter() - started
    return unit


def _unseen(listed: list[dict], seen: set[str]) -> list[dict]:
    fresh = [m for m in listed if m.get("ts") not in seen]
    seen.update(m.get("ts") for m in fresh)
    return fresh


async def run_history_scan(scanner, settings, out: Path, *, token: str, filters: Filters = Filters(),
                           plan_path: Path | None = None, names: bool = False, types: str = TYPES,
                           per_minute: dict[str, int] | None = TIER_PER_MINUTE, page: int = PAGE,
                           show_progress: bool = False, stderr=None) -> dict:
    from slack_pii.tools.history_report import write_report

    started_at, started = time.time(), time.perf_counter()
    reader = Reader(web_client(settings, token), Pacer(per_minute))
    auth = await reader.call("auth.test")
    team, url = auth.get("team_id") or "", auth.get("url") or ""
    report = ReportDir(out, f"{settings.effective_upstream_url} team {team}", plan_path).open()
    try:
        conversations, skipped, seen = [], {}, {}
        async for listed in reader.pages("conversations.list", "channels", types=types, limit=page,
                                         exclude_archived="false"):
            for channel in listed:
                conversation = conversation_of(channel)
                reason = filters.skip_reason(conversation)
                if reason:
                    skipped[reason] = skipped.get(reason, 0) + 1
                    continue
                seen[conversation.id] = {"label": conversation.label(names), "kind": conversation.kind}
                conversations.append(conversation)
        posters = {}
        if names:
            async for members in reader.pages("users.list", "members", limit=page):
                posters.update(poster_names(members))
        todo = [c for c in conversations if f"api:{c.id}" not in report.done]
        options = Options(workspace_url=url, team_id=team, plan=plan_path is not None)
        window = time_window(filters)
        with Progress([Unit(f"api:{c.id}", c) for c in todo], report, show_progress, stderr) as bar:
            for conversation in todo:
                result = await scan_conversation(reader, scanner, conversation, window, options, page)
                report.commit(result)
                bar.advance(Unit(result.key, conversation), result)
        run = {"started": datetime.fromtimestamp(started_at, timezone.utc).isoformat(timespec="seconds"),
               "seconds": round(time.perf_counter() - started, 2), "units_scanned": len(todo),
               "units_resumed": len(conversations) - len(todo), "units_total": len(conversations) + sum(
                   skipped.values()), "skipped_units": skipped, "workers": 1, "filters": filters.describe(),
               "source": "api", "config_version": scanner.config_version}
        report.record_run(run, seen, posters)
    finally:
        report.close()
    write_report(out, report)
    return {"run": run, "totals": report.totals}
