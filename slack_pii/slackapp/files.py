"""The Bolt app's side of files: a file shared where the app watches is fetched with the bot token (url_private,
size-limited), scanned like an upload, and its sender warned with the usual choices (delete the file; Not
sensitive). Unlike the sidecar, the file is already in Slack here: the app can only tell, not stop.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from slack_sdk.errors import SlackClientError

from slack_pii import messages
from slack_pii.detect.files import FileOutcome, FileScan
from slack_pii.slackapp.blocks import NOT_SENSITIVE, Summary, button, clip, context, section
from slack_pii.store.audit import FileScanned
from slack_pii.webapi.files import file_event, run_file_scan, trusted_file_url

log = logging.getLogger("slack_pii.bolt.files")

DELETE_FILE = "pii_delete_file"
MAX_FILES_PER_EVENT = 10


def summary_of(outcome: FileOutcome) -> Summary:
    return Summary(outcome.verdict, tuple(outcome.entity_types), tuple(outcome.rule_ids), outcome.categories)


def file_warning(held_id: str, channel: str | None, summary: Summary, *, ttl_minutes: int) -> dict:
    """The ephemeral (or DM) warning after a file with findings was shared."""
    where = f" in <#{channel}>" if channel else ""
    lead = (f":warning: The file you shared{where} contains {summary.kinds}. Everyone who can see it can "
            "download it, and Slack keeps it.")
    confirm = {"title": {"type": "plain_text", "text": "Delete the file?"},
               "text": {"type": "plain_text", "text": "It is removed from Slack for everyone."},
               "confirm": {"type": "plain_text", "text": "Delete"},
               "deny": {"type": "plain_text", "text": "Keep it"}, "style": "danger"}
    buttons = [button("Delete the file", DELETE_FILE, held_id, style="danger", confirm=confirm),
               button("Not sensitive", NOT_SENSITIVE, held_id)]
    blocks = [section(lead), *[section(fix) for fix in summary.fixes],
              {"type": "actions", "block_id": "pii_file_choices", "elements": buttons},
              context(f"Rules: {summary.rules}. These buttons work for {ttl_minutes} min.")]
    return {"text": clip(f"Your file contains {', '.join(summary.entity_types)}.", 3000), "blocks": blocks}


async def fetch_private(url: str, token: str, limit: int, timeout_seconds: float) -> bytes | None:
    """The file at url_private with the bot token, at most `limit` bytes; None when refused, too big or gone."""
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url, headers={"Authorization": f"Bearer {token}"},
                                   allow_redirects=False) as response:
                if response.status != 200:
                    log.warning(messages.file_fetch_failed(f"status {response.status}"))
                    return None
                chunks, total = [], 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    total += len(chunk)
                    if total > limit:
                        log.warning(messages.file_fetch_failed("over SLACK_PII_FILE_MAX_BYTES"))
                        return None
                    chunks.append(chunk)
                return b"".join(chunks)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        log.warning(messages.file_fetch_failed(type(exc).__name__))
        return None


async def scan_shared_files(service, client, files: list, *, channel: str | None, user: str, where: str,
                            thread_ts: str | None = None) -> None:
    """Fetch, scan and (on findings) warn about each shared file, once per file id."""
    settings = service.settings
    limits = service.services.file_limits
    token = client.token
    for item in files[:MAX_FILES_PER_EVENT]:
        file_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(file_id, str) or not await service.store.mark_processed("file:" + file_id):
            continue
        if not (item.get("url_private_download") or item.get("url_private")):
            try:
                item = (await client.files_info(file=file_id)).get("file") or {}
            except SlackClientError as exc:
                log.warning(messages.bolt_api_failed("files.info", type(exc).__name__))
                continue
        url = item.get("url_private_download") or item.get("url_private") or ""
        started = time.perf_counter()
        audit = dict(source="bolt", method=where, channel=channel, caller=service.who(user), file_id=file_id)
        size = item.get("size") if isinstance(item.get("size"), int) else 0
        if size > limits.max_bytes:
            await service.store.record(FileScanned(**audit, action="allow", size=size, error="file_too_large"))
            continue
        if not token or not trusted_file_url(url, service.app.client.base_url):
            log.warning(messages.file_fetch_failed("no bot token or url_private not on Slack"))
            continue
        data = await fetch_private(url, token, limits.max_bytes, settings.upstream_timeout_seconds)
        if data is None:
            continue
        scan = FileScan(service.scanner, str(item.get("name") or ""), data, limits, channel_id=channel)
        try:
            outcome = await run_file_scan(scan, service.services.file_scans, settings.file_scan_timeout_seconds)
        except Exception as exc:  # noqa: BLE001 - a failed scan is logged by type only; the file is already shared
            log.warning(messages.bolt_scan_failed(where, type(exc).__name__))
            await service.store.record(file_event(audit, None, size=len(data)))
            continue
        await service.store.record(file_event(audit, outcome,
                                              latency_ms=round((time.perf_counter() - started) * 1000, 2)))
        if outcome.verdict == "allow" or not outcome.entities:
            continue
        held_id = await service.store.hold("", user=user, channel=channel,
                                           meta={"how": "file", "file_id": file_id,
                                                 "reports": [list(r) for r in outcome.reports]})
        warning = file_warning(held_id, channel, summary_of(outcome), ttl_minutes=service.ttl_minutes)
        await service.tell(client, channel, user, warning, thread_ts)
