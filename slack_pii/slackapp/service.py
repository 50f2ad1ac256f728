"""The Slack Bolt app: the `send_safely` workflow step, `/safe`, the "Send safely" shortcuts, passive scanning of
channel messages, and the buttons and modals people answer with.

Listeners are thin: they ack first (Slack's 3-second budget), then parse, call the scanner, and render with
`slack_pii.slackapp.blocks`. Every Web API call goes through the app's client, whose base URL is the configured upstream (the
local sink by default, a Slack double in tests). Originals waiting for a decision are held in the store,
encrypted; buttons carry only the held id. HTTP mode serves `/slack/events` behind signature, timestamp and
replay checks; Socket Mode (`SLACK_APP_TOKEN`) receives the same payloads over a websocket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from slack_pii.slackapp import blocks

from slack_pii import messages
from slack_pii.store.audit import AuditEvent, MessageScanned, explain
from slack_pii.store.base import StoreUnavailable
from slack_pii.slackapp.blocks import Summary
from slack_pii.scanpool import NoOutcome, ScanBusy
from slack_pii.services import SERVICES, Services
from slack_pii.slackapp.files import DELETE_FILE, scan_shared_files
from slack_pii.slackapp.oauth import OAUTH, OAuthFlow, install_url, mount_oauth, oauth_enabled
from slack_pii.detect.policy import Decision, FindingAction
from slack_pii.keys import fingerprint
from slack_pii.detect.scanner import Outcome, Scanner
from slack_pii.detect.slack_text import reassemble

log = logging.getLogger("slack_pii.bolt")

FUNCTION_CALLBACK = "send_safely"
COMMAND = "/safe"
GLOBAL_SHORTCUT = "send_safely_global"
MESSAGE_SHORTCUT = "send_safely_message"
# Message subtypes that carry text a person just wrote; everything else (joins, topic changes, deletions,
# bot posts) is not scanned.
SCANNED_SUBTYPES = frozenset({None, "thread_broadcast", "file_share", "me_message", "message_changed"})
REPLAY_WINDOW_SECONDS = 60 * 5  # Slack's own: a request older than this is refused as stale
PROCESSED_KEEP_SECONDS = 3600  # event ids and signatures are remembered this long (Slack retries within minutes)
PURGE_EVERY_SECONDS = 60.0
# The coroutine Bolt's asyncio runner starts each listener in (slack_bolt/listener/asyncio_runner.py); this app
# has no lazy listeners.
BOLT_LISTENER_TASKS = frozenset({"run_ack_function_asynchronously"})


def _error_code(exc: Exception) -> str:
    """The Slack error code of a failed call (e.g. `not_in_channel`), never the request."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "unknown"))
    return type(exc).__name__


# --- audit events -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SenderDecided(AuditEvent):
    """A sender answered a preview or a warning. `action` is what they chose; `reason` (send_original only) is
    their justification, itself redacted before it is stored."""

    name: ClassVar[str] = "sender_decided"
    source: str
    method: str  # where the message came from: /safe, shortcut, passive, send_safely
    channel: str | None
    caller: str | None  # keyed fingerprint of the Slack user id
    action: str  # send_redacted, send_original, edit, cancel, redact_mine, delete_mine, not_sensitive
    entities: dict[str, int] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    reason: str = ""
    status: str = "done"  # done, or why not (no_user_token, expired, api error code)


# --- the service ------------------------------------------------------------------------------------------------


def http_mode(settings) -> bool:
    return bool(settings.slack_signing_secret and settings.slack_bot_token)


def socket_mode(settings) -> bool:
    return bool(settings.slack_app_token and settings.slack_bot_token)


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None


def held_button(*, take: bool):
    """A button on a preview or a warning: track, ack, and find the clicker's held original (telling them when it
    is gone); the method then gets `(held, user, body, client, respond)`. `take` removes it from the store first
    (a double click finds nothing)."""

    def wrap(method):
        async def listener(self, ack, body: dict, action: dict, client, respond) -> None:
            self._track()
            await ack()
            user = body["user"]["id"]
            held = await self.held_for(action["value"], user, respond, take=take)
            if held is not None:
                await method(self, held, user, body, client, respond)

        # NOTE: no functools.wraps: Bolt unwraps a listener to read the argument names it injects.
        listener.__name__, listener.__qualname__ = method.__name__, method.__qualname__
        listener.__doc__ = method.__doc__
        return listener

    return wrap


class BoltService:
    """The AsyncApp and everything its listeners need, built at start-up from the running `Services`."""

    def __init__(self, services: Services, *, clock: Callable[[], float] = time.time):
        settings = services.settings
        self.services = services
        self.settings = settings
        self.store = services.store
        self.metrics = services.metrics
        self.clock = clock
        self._tasks: set[asyncio.Task] = set()
        self._socket_handler = None
        self._purger: asyncio.Task | None = None
        # Only HTTP mode verifies here (handle() is not mounted without a secret); Socket Mode needs no signature.
        self.verifier = SignatureVerifier(_secret(settings.slack_signing_secret) or "socket-mode-only",
                                          clock=_Clock(clock))
        # NOTE: Bolt's and the SDK's own loggers stay at WARNING: at DEBUG they print request bodies.
        quiet = logging.getLogger("slack_pii.bolt.sdk")
        quiet.setLevel(logging.WARNING)
        self.app = AsyncApp(
            signing_secret=_secret(settings.slack_signing_secret) or "socket-mode-only",
            client=AsyncWebClient(token=_secret(settings.slack_bot_token), logger=quiet),
            logger=quiet,
            request_verification_enabled=http_mode(settings),
            process_before_response=False,
        )
        self.app.client.base_url = services.upstream.api_base
        self._register()

    # --- wiring ---------------------------------------------------------------------------------------------

    @property
    def scanner(self) -> Scanner:
        """The scanner in force (hot reload swaps it between requests)."""
        return self.services.scanner_slot.current

    async def start(self) -> None:
        await self.store.purge_expired()
        self._purger = asyncio.create_task(self._purge_loop())
        if socket_mode(self.settings):
            if self.settings.uses_local_sink:
                log.warning(messages.socket_mode_needs_slack())
            else:
                await self.start_socket_mode()

    async def start_socket_mode(self) -> None:
        """Open the websocket; `apps.connections.open` goes to the configured upstream like every other call."""
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        client = AsyncWebClient(base_url=self.app.client.base_url, logger=self.app.logger)
        self._socket_handler = AsyncSocketModeHandler(self.app, _secret(self.settings.slack_app_token),
                                                      logger=self.app.logger, web_client=client)
        await self._socket_handler.connect_async()
        log.info(messages.socket_mode_started())

    async def stop(self) -> None:
        if self._socket_handler is not None:
            await self._socket_handler.close_async()
        if self._purger is not None:
            self._purger.cancel()
        await self.drain()

    async def drain(self) -> None:
        """Wait until every listener Bolt has started so far, and everything they started, has finished.

        NOTE: Bolt answers an event before its listener runs (it creates the listener's task, then returns the
        ack), so a listener that has not run its first line yet is found by its task, which exists from the
        moment Bolt answered: no quiet period is needed.
        """
        current = asyncio.current_task()
        while True:
            pending = [task for task in asyncio.all_tasks()
                       if task is not current and not task.done() and (task in self._tasks or _is_bolt_listener(task))]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None and task not in self._tasks:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(PURGE_EVERY_SECONDS)
            try:
                count = await self.store.purge_expired()
                await self.store.purge_processed(self.clock() - PROCESSED_KEEP_SECONDS)
            except StoreUnavailable as exc:  # the database is away: the next round purges what is left
                log.warning(messages.purge_skipped(type(exc).__name__))
                continue
            if count:
                log.info(messages.purged_held(count))

    # --- HTTP mode ------------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """POST /slack/events: signature and freshness, then no replays, then a well-formed payload, then Bolt."""
        body = await request.read()
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not (timestamp.isdigit() and signature and self.verifier.is_valid(body, timestamp, signature)):
            return _refuse(401, "invalid_signature", "bad signature or stale timestamp")
        if not await self.store.mark_processed("sig:" + signature):
            return _refuse(401, "replayed_request", "replayed request")
        try:
            text = body.decode("utf-8")
            _check_shape(text, request.content_type)
        except (UnicodeDecodeError, ValueError) as exc:
            return _refuse(400, "invalid_payload", str(exc))
        bolt_request = AsyncBoltRequest(body=text, query=request.query_string, headers=dict(request.headers))
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    # --- shared steps ---------------------------------------------------------------------------------------

    async def scan(self, payload: Any, channel: str | None, where: str) -> Outcome | None:
        """The outcome, or None when detection failed or ran over its budget (fail closed: nothing is posted)."""
        started = time.perf_counter()
        try:
            outcome = await self.services.scan_pool.scan(payload, channel_id=channel)
        except ScanBusy:
            log.warning(messages.bolt_scan_failed(where, "busy"))
            return None
        except NoOutcome as exc:
            log.warning(messages.bolt_scan_failed(where, exc.reason))
            return None
        except Exception as exc:  # noqa: BLE001 - any detection failure fails closed; only the type is logged
            log.warning(messages.bolt_scan_failed(where, type(exc).__name__))
            return None
        self.metrics.scan_seconds.observe(time.perf_counter() - started)
        self.metrics.requests.labels(f"bolt:{where}", outcome.verdict).inc()
        for item in outcome.decision.actions:
            if item.action != "allow":
                self.metrics.findings.labels(item.finding.entity_type).inc()
        return outcome

    def redact_everything(self, text, outcome):
        """The text with every acted-on finding replaced, warn ones included: what *Send redacted* means to a
        person (a warn finding is left in by the proxy, but someone who asks for redaction wants it gone)."""
        promoted = Decision(outcome.verdict, tuple(
            FindingAction(a.finding, "redact" if a.action == "warn" else a.action, a.reason)
            for a in outcome.decision.actions), outcome.decision.reasons)
        edits = self.scanner.redactor.redact(list(outcome.segments), promoted)
        return reassemble(text, edits)

    def who(self, user: str | None) -> str | None:
        return fingerprint(user, self.scanner.fingerprint_key) if user else None

    async def audit_scan(self, where: str, channel: str | None, user: str | None, outcome, started: float) -> None:
        summary = outcome.summary()
        await self.store.record(MessageScanned(
            source="bolt", method=where, channel=channel, caller=self.who(user), action=outcome.verdict,
            entities=summary["entities"], rules=summary["rules"], latency_ms=(time.perf_counter() - started) * 1000,
            config_version=outcome.config_version, **explain(outcome)))

    async def audit_decision(self, where: str, channel: str | None, user: str | None, action: str, outcome=None,
                             reason: str = "", status: str = "done") -> None:
        summary = outcome.summary() if outcome is not None else {"entities": {}, "rules": []}
        await self.store.record(SenderDecided(
            source="bolt", method=where, channel=channel, caller=self.who(user), action=action,
            entities=summary["entities"], rules=summary["rules"], reason=reason, status=status))

    async def post(self, client, channel: str, text: str, user: str | None, how: str,
                   thread_ts: str | None = None) -> dict | None:
        """Post for the sender; the Web API answer, or None (logged by error code) when Slack refused."""
        try:
            answer = await client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                                   **blocks.sent_by(text, user, how))
        except SlackClientError as exc:
            log.warning(messages.bolt_api_failed("chat.postMessage", _error_code(exc)))
            return None
        return answer.data

    async def tell(self, client, channel: str | None, user: str, body: dict, thread_ts: str | None = None) -> None:
        """An ephemeral for `user` in `channel`; a DM when ephemeral is impossible (not in channel, no channel)."""
        if channel:
            try:
                await client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, **body)
                return
            except SlackClientError as exc:
                log.info(messages.bolt_api_failed("chat.postEphemeral", _error_code(exc)))
        try:
            await client.chat_postMessage(channel=user, **body)
        except SlackClientError as exc:
            log.warning(messages.bolt_api_failed("chat.postMessage (DM)", _error_code(exc)))

    async def reply(self, respond, body: dict) -> None:
        """Replace the message the button was on (the preview or the warning), via its response_url."""
        if respond is None or not getattr(respond, "response_url", None):
            return
        try:
            await respond(replace_original=True, **body)
        except Exception as exc:  # noqa: BLE001 - a response_url that fails must not undo what was done
            log.info(messages.bolt_api_failed("response_url", type(exc).__name__))

    def how_to_authorise(self) -> str:
        """One sentence for a sender without a user token: the install link, or plainly why there is none."""
        url = install_url(self.settings)
        if url:
            return f"<{url}|Authorise this app for your account> once, and *Redact my message* will work."
        if oauth_enabled(self.settings):
            return ("To let it, authorise this app for your account: ask whoever runs it for the /slack/install "
                    "link (this proxy does not know its public address).")
        return "This app is not set up for people to authorise it (no OAuth client configured)."

    @property
    def ttl_minutes(self) -> int:
        return max(1, round(self.settings.hold_ttl_seconds / 60))

    # --- /safe, shortcuts, edit: scan first, then post or preview ------------------------------------------

    async def submit(self, client, *, text: str, channel: str, user: str, how: str,
                     thread_ts: str | None = None) -> None:
        """Scan the sender's text: clean is posted at once; findings are held and previewed to the sender."""
        started = time.perf_counter()
        outcome = await self.scan(text, channel, how)
        if outcome is None:
            await self.tell(client, channel, user, blocks.status(messages.scan_failed_detail()))
            return
        await self.audit_scan(how, channel, user, outcome, started)
        if outcome.verdict == "allow":
            await self.post(client, channel, text, user, how, thread_ts)
            return
        held_id = await self.store.hold(text, user=user, channel=channel,
                                        meta={"thread_ts": thread_ts, "how": how})
        preview = blocks.preview(held_id, self.redact_everything(text, outcome), Summary.from_outcome(outcome),
                                 can_send_original=outcome.verdict in ("warn", "redact"),
                                 can_edit=len(text) <= blocks.MAX_INPUT_VALUE, ttl_minutes=self.ttl_minutes)
        await self.tell(client, channel, user, preview, thread_ts)

    async def held_for(self, held_id: str, user: str, respond, *, take: bool):
        """The held original if it exists and belongs to `user`; otherwise tell them and return None."""
        held = await self.store.peek(held_id)
        if held is None or held.user != user:
            await self.reply(respond, blocks.status(
                "This has expired or was already handled; the original is gone. Nothing was posted."))
            return None
        if take:
            held = await self.store.take_held(held_id)
            if held is None:  # a double click: the other one won
                return None
        return held

    async def held_from_modal(self, view: dict, user: str, client, gone: str):
        """(held original, private metadata) for a modal opened from a held message, taken from the store; when it
        is gone or not `user`'s, tell them `gone` and return (None, metadata)."""
        meta = json.loads(view.get("private_metadata") or "{}")
        held = await self.store.take_held(meta.get("id", ""))
        if held is None or held.user != user:
            await self.tell(client, None, user, blocks.status(gone))
            return None, meta
        return held, meta

    # --- listeners --------------------------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app
        app.middleware(self._dedupe)
        app.error(self._on_error)
        app.command(COMMAND)(self.on_command)
        app.shortcut(GLOBAL_SHORTCUT)(self.on_global_shortcut)
        app.shortcut(MESSAGE_SHORTCUT)(self.on_message_shortcut)
        app.view(blocks.COMPOSE_VIEW)(self.on_compose_submit)
        app.view(blocks.EDIT_VIEW)(self.on_edit_submit)
        app.view(blocks.REASON_VIEW)(self.on_reason_submit)
        app.action(blocks.SEND_REDACTED)(self.on_send_redacted)
        app.action(blocks.EDIT)(self.on_edit)
        app.action(blocks.SEND_ORIGINAL)(self.on_send_original)
        app.action(blocks.CANCEL)(self.on_cancel)
        app.action(blocks.REDACT_MINE)(self.on_redact_mine)
        app.action(blocks.DELETE_MINE)(self.on_delete_mine)
        app.action(blocks.NOT_SENSITIVE)(self.on_not_sensitive)
        app.function(FUNCTION_CALLBACK)(self.on_send_safely)
        app.event("message")(self.on_message)
        app.action(DELETE_FILE)(self.on_delete_file)
        app.event("file_shared")(self.on_file_shared)
        app.event("file_created")(self.on_file_shared)

    async def _on_error(self, error: Exception, logger: logging.Logger):
        """A middleware or listener raised. The store being unreachable gets the proxy's answer (a Slack-shaped
        503 pii_store_unavailable: nothing was acted on, Slack retries); anything else Bolt's default."""
        if isinstance(error, StoreUnavailable):
            return BoltResponse(status=503, body=json.dumps({"ok": False, "error": messages.STORE_UNAVAILABLE_CODE}),
                                headers={"content-type": "application/json;charset=utf-8"})
        logger.exception(f"Failed to run a middleware or listener function (error: {type(error).__name__})")
        return None

    async def _dedupe(self, body: dict, next):
        """Idempotency on Slack's event id: a retried delivery (X-Slack-Retry-Num) is acked and not acted on."""
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if event_id and not await self.store.mark_processed("event:" + event_id):
            log.info(messages.duplicate_event(body.get("event", {}).get("type", "event")))
            return BoltResponse(status=200, body="")
        return await next()

    async def on_command(self, ack, command: dict, client) -> None:
        self._track()
        await ack()
        text = command.get("text", "").strip()
        if not text:
            await self.tell(client, command.get("channel_id"), command["user_id"], blocks.status(
                "Usage: `/safe your message` — it is scanned for personal data and secrets before it is posted."))
            return
        await self.submit(client, text=text, channel=command["channel_id"], user=command["user_id"], how=COMMAND)

    async def on_global_shortcut(self, ack, shortcut: dict, client) -> None:
        self._track()
        await ack()
        await client.views_open(trigger_id=shortcut["trigger_id"], view=blocks.compose_modal())

    async def on_message_shortcut(self, ack, shortcut: dict, client) -> None:
        self._track()
        await ack()
        channel = (shortcut.get("channel") or {}).get("id")
        text = (shortcut.get("message") or {}).get("text", "")
        await client.views_open(trigger_id=shortcut["trigger_id"], view=blocks.compose_modal(channel, text))

    async def on_compose_submit(self, ack, body: dict, view: dict, client) -> None:
        self._track()
        values = view["state"]["values"]
        text = (values[blocks.MESSAGE_BLOCK][blocks.MESSAGE_INPUT].get("value") or "").strip()
        channel = values[blocks.CHANNEL_BLOCK][blocks.CHANNEL_INPUT].get("selected_conversation")
        if not text or not channel:
            await ack(response_action="errors", errors={blocks.MESSAGE_BLOCK: "Write a message to send."}
                      if not text else {blocks.CHANNEL_BLOCK: "Choose where to post it."})
            return
        await ack()
        await self.submit(client, text=text, channel=channel, user=body["user"]["id"], how="shortcut")

    @held_button(take=True)
    async def on_send_redacted(self, held, user: str, body: dict, client, respond) -> None:
        how = held.meta.get("how", COMMAND)
        outcome = await self.scan(held.text, held.channel, how)
        if outcome is None:
            await self.reply(respond, blocks.status("The message could not be scanned again; nothing was posted."))
            return
        posted = await self.post(client, held.channel, self.redact_everything(held.text, outcome), user, how,
                                 held.meta.get("thread_ts"))
        await self.audit_decision(how, held.channel, user, "send_redacted", outcome,
                                  status="done" if posted else "post_failed")
        await self.reply(respond, blocks.status(
            f"Posted the redacted version in <#{held.channel}>. Your original was erased." if posted else
            "Slack refused the post; nothing was sent and your original was erased."))

    @held_button(take=False)
    async def on_edit(self, held, user: str, body: dict, client, respond) -> None:
        view = blocks.edit_modal(json.dumps({"id": held.id, "r": body.get("response_url", "")}), held.text)
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    async def on_edit_submit(self, ack, body: dict, view: dict, client) -> None:
        self._track()
        await ack()
        user = body["user"]["id"]
        held, meta = await self.held_from_modal(
            view, user, client, "That message expired or was already handled, so the edit was not sent.")
        if held is None:
            return
        text = (view["state"]["values"][blocks.MESSAGE_BLOCK][blocks.MESSAGE_INPUT].get("value") or "").strip()
        how = held.meta.get("how", COMMAND)
        await self.audit_decision(how, held.channel, user, "edit")
        await self._respond_url(meta.get("r"), blocks.status("Replaced by your edit (scanned again)."))
        await self.submit(client, text=text, channel=held.channel, user=user, how=how,
                          thread_ts=held.meta.get("thread_ts"))

    @held_button(take=False)
    async def on_send_original(self, held, user: str, body: dict, client, respond) -> None:
        outcome = await self.scan(held.text, held.channel, held.meta.get("how", COMMAND))
        if outcome is None or outcome.verdict == "block":
            await self.reply(respond, blocks.status("Policy does not allow sending this original."))
            return
        view = blocks.reason_modal(json.dumps({"id": held.id, "r": body.get("response_url", "")}),
                                   Summary.from_outcome(outcome))
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    async def on_reason_submit(self, ack, body: dict, view: dict, client) -> None:
        self._track()
        reason = (view["state"]["values"][blocks.REASON_BLOCK][blocks.REASON_INPUT].get("value") or "").strip()
        if not reason:
            await ack(response_action="errors", errors={blocks.REASON_BLOCK: "Say why the original is needed."})
            return
        await ack()
        user = body["user"]["id"]
        held, meta = await self.held_from_modal(view, user, client, "That message expired or was already handled.")
        if held is None:
            return
        how = held.meta.get("how", COMMAND)
        outcome = await self.scan(held.text, held.channel, how)
        if outcome is None or outcome.verdict == "block":
            await self._respond_url(meta.get("r"), blocks.status("Policy does not allow sending this original; "
                                                                 "it was erased and nothing was posted."))
            return
        # NOTE: the reason is free text from the sender; it is stored redacted like anything else.
        reason_outcome = await self.scan(reason[:500], held.channel, "reason")
        safe_reason = self.redact_everything(reason[:500], reason_outcome) if reason_outcome else "[unscanned]"
        posted = await self.post(client, held.channel, held.text, user, how, held.meta.get("thread_ts"))
        await self.audit_decision(how, held.channel, user, "send_original", outcome, reason=safe_reason,
                                  status="done" if posted else "post_failed")
        await self._respond_url(meta.get("r"), blocks.status(
            f"Posted your original in <#{held.channel}>; your reason was recorded." if posted else
            "Slack refused the post; nothing was sent."))

    @held_button(take=True)
    async def on_cancel(self, held, user: str, body: dict, client, respond) -> None:
        await self.audit_decision(held.meta.get("how", COMMAND), held.channel, user, "cancel")
        await self.reply(respond, blocks.status("Cancelled. Nothing was posted and your original was erased."))

    async def _respond_url(self, url: str | None, body: dict) -> None:
        """Replace a preview from a modal's submission (which has no response_url of its own)."""
        if not url:
            return
        from slack_sdk.webhook.async_client import AsyncWebhookClient

        try:
            await AsyncWebhookClient(url, logger=self.app.logger).send(replace_original=True, **body)
        except Exception as exc:  # noqa: BLE001 - the decision stands even if the old preview stays visible
            log.info(messages.bolt_api_failed("response_url", type(exc).__name__))

    # --- the workflow step --------------------------------------------------------------------------------------

    async def on_send_safely(self, inputs: dict, complete, fail, client) -> None:
        """Workflow Builder's "Send safely": the message never reaches Slack unscanned."""
        self._track()
        text = str(inputs.get("message") or "")
        channel, user, thread_ts = inputs.get("channel_id"), inputs.get("user_id"), inputs.get("thread_ts") or None
        started = time.perf_counter()
        outcome = await self.scan(text, channel, FUNCTION_CALLBACK)
        if outcome is None:
            await fail(messages.scan_failed_detail())
            return
        await self.audit_scan(FUNCTION_CALLBACK, channel, user, outcome, started)
        summary = Summary.from_outcome(outcome)
        if outcome.verdict == "block":
            await fail(messages.blocked_detail(summary.entity_types, summary.rule_ids))
            if user:
                await self.tell(client, None, user, blocks.blocked_dm(channel, summary, "the workflow step"))
            return
        posted = await self.post(client, channel, outcome.redacted, user, "a workflow", thread_ts)
        if posted is None:
            await fail(messages.workflow_post_failed())
            return
        ts = posted.get("ts", "")
        link = ""
        try:
            link = (await client.chat_getPermalink(channel=channel, message_ts=ts)).get("permalink") or ""
        except SlackClientError as exc:
            log.info(messages.bolt_api_failed("chat.getPermalink", _error_code(exc)))
        await complete(outputs={"message_link": link, "message_ts": ts, "verdict": outcome.verdict,
                                "entity_types": ", ".join(summary.entity_types)})

    # --- passive scanning ---------------------------------------------------------------------------------------

    async def on_message(self, event: dict, context, client) -> None:
        """A message posted directly (or edited) in a channel the app is in: warn the sender on findings."""
        self._track()
        if not self.settings.passive_scanning:
            return
        message = _human_message(event, context.get("bot_user_id"))
        if message is None:
            return
        channel, user, ts = event.get("channel"), message["user"], message["ts"]
        thread_ts = message.get("thread_ts")
        if message.get("files"):
            await scan_shared_files(self, client, message["files"], channel=channel, user=user, where="file_share",
                                    thread_ts=thread_ts)
        payload = {"text": message.get("text", ""),
                   "files": [{"title": f.get("title", "")} for f in message.get("files", []) if f.get("title")]}
        started = time.perf_counter()
        outcome = await self.scan(payload, channel, "passive")
        if outcome is None or outcome.verdict == "allow":
            return
        await self.audit_scan("passive", channel, user, outcome, started)
        if (self.settings.passive_action == "repost" and outcome.verdict in ("redact", "block")
                and self.settings.slack_user_token):
            await self.repost_redacted(client, channel, user, ts, thread_ts, payload, outcome)
            return
        held_id = await self.store.hold(message.get("text", ""), user=user, channel=channel,
                                        meta={"ts": ts, "thread_ts": thread_ts, "how": "passive"})
        can_edit = await self.store.user_token(user) is not None
        warning = blocks.passive_warning(held_id, channel, Summary.from_outcome(outcome), can_edit=can_edit,
                                         ttl_minutes=self.ttl_minutes, authorise=self.how_to_authorise())
        await self.tell(client, channel, user, warning, thread_ts)

    async def repost_redacted(self, client, channel: str, user: str, ts: str, thread_ts: str | None, payload: dict,
                              outcome) -> None:
        """Policy `passive_action: repost`: delete with the admin token, repost redacted, attributed to the sender."""
        admin = _secret(self.settings.slack_user_token)
        try:
            await client.chat_delete(token=admin, channel=channel, ts=ts)
        except SlackClientError as exc:
            log.warning(messages.bolt_api_failed("chat.delete", _error_code(exc)))
            await self.audit_decision("passive", channel, user, "repost", outcome, status=_error_code(exc))
            return
        await self.post(client, channel, self.redact_everything(payload, outcome)["text"], user,
                        "slack-pii-proxy (redacted)",
                        thread_ts if thread_ts != ts else None)
        await self.audit_decision("passive", channel, user, "repost", outcome)
        await self.tell(client, channel, user, blocks.status(
            f"Your message in <#{channel}> contained {Summary.from_outcome(outcome).kinds}: it was removed and "
            "reposted with those values redacted."))

    @held_button(take=False)
    async def on_redact_mine(self, held, user: str, body: dict, client, respond) -> None:
        token = await self.store.user_token(user)
        if token is None:
            await self.audit_decision("passive", held.channel, user, "redact_mine", status="no_user_token")
            await self.reply(respond, blocks.status(
                "I can't edit your message: you haven't authorised this app to act for you, and Slack lets only "
                f"you edit your own messages. {self.how_to_authorise()} For now, hover over it, choose ⋯ → "
                "*Edit message* and remove the flagged values, or delete it."))
            return
        outcome = await self.scan(held.text, held.channel, "passive")
        if outcome is None:
            await self.reply(respond, blocks.status("The message could not be scanned again; nothing changed."))
            return
        try:
            await client.chat_update(token=token, channel=held.channel, ts=held.meta["ts"],
                                     text=self.redact_everything(held.text, outcome))
        except SlackClientError as exc:
            await self.audit_decision("passive", held.channel, user, "redact_mine", outcome, status=_error_code(exc))
            await self.reply(respond, blocks.status(f"Slack refused the edit ({_error_code(exc)}); please edit "
                                                    "the message yourself."))
            return
        await self.store.take_held(held.id)
        await self.audit_decision("passive", held.channel, user, "redact_mine", outcome)
        await self.reply(respond, blocks.status("Done: your message now shows the redacted version."))

    @held_button(take=False)
    async def on_delete_mine(self, held, user: str, body: dict, client, respond) -> None:
        token = await self.store.user_token(user) or _secret(self.settings.slack_user_token)
        if token is None:
            await self.audit_decision("passive", held.channel, user, "delete_mine", status="no_user_token")
            await self.reply(respond, blocks.status(
                "I can't delete your message: you haven't authorised this app to act for you. Hover over it and "
                "choose ⋯ → *Delete message*."))
            return
        try:
            await client.chat_delete(token=token, channel=held.channel, ts=held.meta["ts"])
        except SlackClientError as exc:
            await self.audit_decision("passive", held.channel, user, "delete_mine", status=_error_code(exc))
            await self.reply(respond, blocks.status(f"Slack refused the deletion ({_error_code(exc)}); please "
                                                    "delete the message yourself."))
            return
        await self.store.take_held(held.id)
        await self.audit_decision("passive", held.channel, user, "delete_mine")
        await self.reply(respond, blocks.status("Deleted."))

    async def on_file_shared(self, event: dict, client) -> None:
        """file_shared / file_created: the file object comes from files.info (scanned once per file id)."""
        self._track()
        user = event.get("user_id") or ""
        if self.settings.passive_scanning and isinstance(event.get("file_id"), str) and user:
            await scan_shared_files(self, client, [{"id": event["file_id"]}], channel=event.get("channel_id"),
                                    user=user, where=event.get("type", "file_shared"))

    @held_button(take=False)
    async def on_delete_file(self, held, user: str, body: dict, client, respond) -> None:
        """The file warning's *Delete the file*: files.delete as the sender (or with the admin token)."""
        token = await self.store.user_token(user) or _secret(self.settings.slack_user_token)
        if token is None:
            await self.audit_decision("file", held.channel, user, "delete_file", status="no_user_token")
            await self.reply(respond, blocks.status(
                "I can't delete your file: you haven't authorised this app to act for you. Open the file and "
                f"choose ⋯ → *Delete file*. {self.how_to_authorise()}"))
            return
        try:
            await client.files_delete(token=token, file=held.meta["file_id"])
        except SlackClientError as exc:
            await self.audit_decision("file", held.channel, user, "delete_file", status=_error_code(exc))
            await self.reply(respond, blocks.status(f"Slack refused the deletion ({_error_code(exc)}); please "
                                                    "delete the file yourself."))
            return
        await self.store.take_held(held.id)
        await self.audit_decision("file", held.channel, user, "delete_file")
        await self.reply(respond, blocks.status("Deleted the file."))

    @held_button(take=True)
    async def on_not_sensitive(self, held, user: str, body: dict, client, respond) -> None:
        """A false-positive report: rule id, entity type and keyed fingerprint per finding, never the value."""
        outcome = await self.scan(held.text, held.channel, "passive") if held.meta.get("how") != "file" else None
        reported = []
        for rule, entity, value_fingerprint in held.meta.get("reports", []):  # a shared file: fingerprints kept
            await self.store.record_feedback(rule, entity, value_fingerprint, reporter=user)
            reported.append(rule)
        if outcome is not None:
            key = self.scanner.fingerprint_key
            for item in outcome.decision.actions:
                if item.action != "allow":
                    finding = item.finding
                    await self.store.record_feedback(finding.rule, finding.entity_type,
                                                     fingerprint(finding.value, key), reporter=user)
                    reported.append(finding.rule)
        await self.audit_decision("passive", held.channel, user, "not_sensitive", outcome)
        await self.reply(respond, blocks.status(
            "Thanks: reported as not sensitive to the security team "
            f"(rules: {blocks.names(sorted(set(reported)))}). Your message stays as it is."))


# --- helpers ------------------------------------------------------------------------------------------------------


def _is_bolt_listener(task: asyncio.Task) -> bool:
    """A task Bolt created to run a listener after answering Slack."""
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "slack_bolt" in code.co_filename and code.co_name in BOLT_LISTENER_TASKS


class _Clock:
    """SignatureVerifier's clock interface over an injectable `() -> float`."""

    def __init__(self, now: Callable[[], float]):
        self._now = now

    def now(self) -> float:
        return self._now()


def _human_message(event: dict, own_user: str | None) -> dict | None:
    """The message a person wrote (for message_changed: the new version), or None for bots, the app itself,
    system subtypes and edits that did not change the text (unfurls, our own redaction)."""
    subtype = event.get("subtype")
    if subtype not in SCANNED_SUBTYPES or event.get("bot_id"):
        return None
    message = event
    if subtype == "message_changed":
        message = event.get("message") or {}
        previous = event.get("previous_message") or {}
        if message.get("text") == previous.get("text"):
            return None
    if message.get("bot_id") or message.get("subtype") == "bot_message" or not message.get("user"):
        return None
    if own_user and message.get("user") == own_user:
        return None
    if not message.get("ts") or not (message.get("text") or message.get("files")):
        return None
    return message


def _check_shape(text: str, content_type: str) -> None:
    """Raise ValueError (naming the field, never its content) unless `text` is a payload Slack would send."""
    if content_type == "application/json" or text.lstrip().startswith("{"):
        body = json.loads(text)
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            raise ValueError("JSON body must be an object with a `type`")
        return
    form = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
    if "payload" in form:
        payload = json.loads(form["payload"][0])
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            raise ValueError("`payload` must be a JSON object with a `type`")
        return
    if "command" not in form or "user_id" not in form:
        raise ValueError("form body needs `payload`, or `command` and `user_id`")


def _refuse(status: int, code: str, reason: str) -> web.Response:
    log.warning(messages.bolt_refused(reason, status))
    return web.json_response({"ok": False, "error": code}, status=status)


# --- mounting ---------------------------------------------------------------------------------------------------

BOLT = web.AppKey("bolt", BoltService)


async def slack_events(request: web.Request) -> web.StreamResponse:
    """POST /slack/events, answered by the Bolt app built at start-up."""
    return await request.app[BOLT].handle(request)


def mount_bolt(app: web.Application, settings) -> None:
    """Add the Bolt app to the proxy when Slack credentials say so (HTTP mode and/or Socket Mode).

    The routes exist from the start; the service is built once the proxy's own start-up has made the `Services`
    (it needs the store, the scanner and the upstream base URL), and it stops first on shutdown (so in-flight
    listeners finish while the store is still open).
    """
    if not (http_mode(settings) or socket_mode(settings)):
        return
    if http_mode(settings):
        app.router.add_post("/slack/events", slack_events)
    mount_oauth(app, settings)  # /slack/install, /slack/oauth_redirect, when SLACK_CLIENT_ID/SECRET are set

    async def lifecycle(app: web.Application):
        service = BoltService(app[SERVICES])
        app[BOLT] = service
        if oauth_enabled(settings):
            app[OAUTH] = OAuthFlow(app[SERVICES], logger=service.app.logger)
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app.cleanup_ctx.append(lifecycle)
