"""`remediate`: apply a history scan's plan through the upstream: chat.update with the redacted text, or chat.delete.

The plan holds no text (channel, ts, the action and the entity types only). NOTE: the redacted text to write is
recomputed at apply time: each message is read back (conversations.history / conversations.replies with a
reader token), scanned again with today's rules and policy, and the redactor's output is what chat.update sends.
So nothing sensitive is stored between scan and apply, an edit made since the scan is respected, and a message
that is already clean or gone is left alone.

Dry run by default (no call is made). With `apply`, each finished item is appended to a done-log next to the
plan (`PLAN.done`) and audited (`message_remediated`), so a second run, or a resumed one, never acts twice. Items
that cannot be changed (another workspace's user, no token for the author, Slack's refusal) are listed every run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from slack_pii import messages
from slack_pii.store.audit import AuditEvent
from slack_pii.tools.history import HistoryError, content_payload
from slack_pii.tools.history_api import Reader

WRITE_PER_MINUTE = {"chat.update": 50, "chat.delete": 50, "conversations.history": 50, "conversations.replies": 50}
ACTIONS = ("redact", "delete")


@dataclass(frozen=True)
class MessageRemediated(AuditEvent):
    """A planned message was redacted or deleted in Slack, or Slack refused; recorded after the call returned."""

    name: ClassVar[str] = "message_remediated"
    source: str
    method: str  # chat.update or chat.delete
    channel: str
    caller: str | None  # keyed fingerprint of the token used
    action: str  # redact | delete
    entities: dict[str, int] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    status: int | None = None
    ts: str = ""
    result: str = ""  # redacted | deleted | refused
    error: str = ""  # Slack's error code when refused


@dataclass(frozen=True)
class PlanItem:
    channel: str
    ts: str
    action: str
    thread_ts: str | None = None
    user: str | None = None
    bot_id: str | None = None
    entities: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    external: bool = False

    @property
    def key(self) -> str:
        return f"{self.channel}/{self.ts}"

    @property
    def is_reply(self) -> bool:
        return bool(self.thread_ts and self.thread_ts != self.ts)


def read_plan(path: Path) -> list[PlanItem]:
    if not path.is_file():
        raise HistoryError(messages.remediation_plan_unreadable(str(path), 0, "no such file"))
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            item = PlanItem(raw["channel"], raw["ts"], raw["action"], raw.get("thread_ts"), raw.get("user"),
                            raw.get("bot_id"), tuple(raw.get("entities") or ()), tuple(raw.get("rules") or ()),
                            bool(raw.get("external")))
        except (ValueError, KeyError, TypeError):
            raise HistoryError(messages.remediation_plan_unreadable(str(path), number, "not a plan line")) from None
        if item.action not in ACTIONS:
            raise HistoryError(messages.remediation_plan_unreadable(str(path), number, f"unknown action "
                                                                    f"{item.action!r} (use redact or delete)"))
        items.append(item)
    return items


def done_log_path(plan: Path) -> Path:
    return plan.with_name(plan.name + ".done")


def read_done(plan: Path) -> set[str]:
    path = done_log_path(plan)
    if not path.exists():
        return set()
    done = set()
    for raw in path.read_bytes().splitlines(keepends=True):
        if raw.endswith(b"\n"):
            done.add(json.loads(raw)["key"])
    return done


@dataclass
class Outcome:
    """One item's result: `done` results go into the done-log; `cannot` ones are listed and retried next run."""

    item: PlanItem
    result: str  # would-redact | would-delete | redacted | deleted | already-clean | already-gone | cannot
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.result in ("redacted", "deleted", "already-clean", "already-gone")


class Tokens:
    """Which token acts for an item: the author's own (OAuth store) for edits, else the admin's; the admin's first
    for deletes. Tokens never leave this object except into the Authorization header."""

    def __init__(self, user_token: Callable, admin_token: str | None):
        self._user_token, self.admin = user_token, admin_token

    async def for_item(self, item: PlanItem) -> tuple[str | None, str]:
        own = await self._user_token(item.user) if item.user else None
        if item.action == "delete":
            return (self.admin, "admin") if self.admin else (own, "author")
        return (own, "author") if own else (self.admin, "admin")


def cannot_reason(item: PlanItem, token: str | None) -> str | None:
    if item.external:
        return "posted by a user of another workspace (Slack Connect): only their workspace can change it"
    if token is None:
        who = item.user or item.bot_id or "unknown"
        return (f"no token for author {who}: they can authorise the app at /slack/install, or set "
                "SLACK_USER_TOKEN (an admin's)")
    return None


async def remediate(scanner, plan: Path, *, reader: Reader | None, tokens: Tokens, apply: bool, store=None,
                    key: bytes = b"", report: Callable[[Outcome], None] = lambda o: None) -> list[Outcome]:
    """Work through the plan: dry run says what would happen; apply reads back, recomputes and acts once."""
    from slack_pii.keys import fingerprint

    items = read_plan(plan)
    done = read_done(plan)
    outcomes = []
    log = done_log_path(plan).open("a", encoding="utf-8") if apply else None
    try:
        for item in items:
            if item.key in done:
                continue
            token, kind = await tokens.for_item(item)
            reason = cannot_reason(item, token)
            if reason:
                outcome = Outcome(item, "cannot", reason)
            elif not apply:
                outcome = Outcome(item, f"would-{item.action}", f"as {kind}")
            else:
                outcome = await _apply(scanner, reader, item, token, store, fingerprint(token, key))
            outcomes.append(outcome)
            report(outcome)
            if log is not None and outcome.done:
                log.write(json.dumps({"key": item.key, "result": outcome.result, "at": round(time.time(), 3)}) + "\n")
                log.flush()
                done.add(item.key)
    finally:
        if log is not None:
            log.close()
    return outcomes


async def fetch(reader: Reader, item: PlanItem) -> dict | None:
    """The message as Slack holds it now, or None when it is gone."""
    window = {"latest": item.ts, "oldest": item.ts, "inclusive": "true", "limit": 1}
    if item.is_reply:
        method, key, args = "conversations.replies", "messages", {"channel": item.channel, "ts": item.thread_ts}
    else:
        method, key, args = "conversations.history", "messages", {"channel": item.channel}
    try:
        async for listed in reader.pages(method, key, **args, **window):
            for message in listed:
                if message.get("ts") == item.ts:
                    return message
    except HistoryError as exc:
        if "thread_not_found" in str(exc) or "message_not_found" in str(exc):
            return None
        raise
    return None


async def _apply(scanner, reader: Reader, item: PlanItem, token: str, store, caller: str) -> Outcome:
    from slack_sdk.errors import SlackApiError

    message = await fetch(reader, item)
    if message is None:
        return Outcome(item, "already-gone")
    payload, entities, rules = {}, {}, []
    if item.action == "redact":
        outcome = scanner.scan(content_payload(message), channel_id=item.channel)
        if outcome.verdict not in ("redact", "block"):
            return Outcome(item, "already-clean")
        summary = outcome.summary()
        entities, rules = summary["entities"], summary["rules"]
        if any(f.path and f.path[0] == "files" for f in outcome.decision.to_redact):
            return Outcome(item, "cannot", "a finding is in a file's title or preview, which chat.update cannot "
                                           "change: delete the file (files.delete) or plan a delete")
        payload = {k: v for k, v in outcome.redacted.items() if k in ("text", "blocks", "attachments")}
    method = "chat.update" if item.action == "redact" else "chat.delete"
    await reader.pacer.wait(method)
    error, status = "", 200
    try:
        await reader.client.api_call(method, json={"channel": item.channel, "ts": item.ts, **payload},
                                     headers={"Authorization": f"Bearer {token}"})
    except SlackApiError as exc:
        error, status = str(exc.response.get("error")), exc.response.status_code
    result = "refused" if error else ("redacted" if item.action == "redact" else "deleted")
    if store is not None:
        await store.record(MessageRemediated("remediate", method, item.channel, caller, item.action, entities, rules,
                                             status, item.ts, result, error))
    if error == "message_not_found":
        return Outcome(item, "already-gone")
    if error:
        return Outcome(item, "cannot", f"{method} refused: {error}")
    return Outcome(item, result)
