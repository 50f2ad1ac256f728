"""Block Kit for everything the Bolt app shows people: previews, warnings, modals, DMs, and a limits validator.

Builders are pure: data in, Slack JSON out. They clip user text to Block Kit's limits so a long message still
renders (Slack rejects the whole payload otherwise, and the sender would get no warning at all). Button values
carry only a held-message id, never text. `problems(...)` checks every limit the builders rely on; the tests run
it over every payload the app sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (ActionsBlock, Block, ButtonElement, ConfirmObject, ContextBlock, HeaderBlock,
                                     InputBlock, SectionBlock)
from slack_sdk.models.views import View

# --- ids the listeners match on ------------------------------------------------------------------------------

SEND_REDACTED = "safe_send_redacted"
EDIT = "safe_edit"
SEND_ORIGINAL = "safe_send_original"
CANCEL = "safe_cancel"
REDACT_MINE = "pii_redact_mine"
DELETE_MINE = "pii_delete_mine"
NOT_SENSITIVE = "pii_not_sensitive"

EDIT_VIEW = "safe_edit_view"
REASON_VIEW = "safe_reason_view"
COMPOSE_VIEW = "safe_compose_view"

MESSAGE_BLOCK, MESSAGE_INPUT = "message", "message_input"
CHANNEL_BLOCK, CHANNEL_INPUT = "channel", "channel_input"
REASON_BLOCK, REASON_INPUT = "reason", "reason_input"

# --- Block Kit limits (https://api.slack.com/reference/block-kit) ------------------------------------------
# Taken from slack_sdk.models where it states them (kept current with Slack by the SDK); the rest from Slack's
# reference.

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = View.blocks_max_length
MAX_SECTION_TEXT = SectionBlock.text_max_length
MAX_FIELD_TEXT = 2000
MAX_FIELDS = SectionBlock.fields_max_length
MAX_HEADER_TEXT = HeaderBlock.text_max_length
MAX_BUTTON_TEXT = ButtonElement.text_max_length
MAX_BUTTON_VALUE = ButtonElement.value_max_length
MAX_ID = Block.block_id_max_length
MAX_VIEW_TITLE = View.title_max_length
MAX_PRIVATE_METADATA = View.private_metadata_max_length
MAX_INPUT_VALUE = 3000
MAX_LABEL = InputBlock.label_max_length
MAX_PLACEHOLDER = 150
MAX_ACTIONS_ELEMENTS = ActionsBlock.elements_max_length
MAX_CONTEXT_ELEMENTS = ContextBlock.elements_max_length
MAX_CONFIRM_TITLE, MAX_CONFIRM_TEXT, MAX_CONFIRM_BUTTON = (ConfirmObject.title_max_length,
                                                           ConfirmObject.text_max_length,
                                                           ConfirmObject.confirm_max_length)
MAX_MESSAGE_TEXT = 40_000

# What to do about each category, in the sender's words.
FIXES = {
    "credential": "Treat a posted credential as leaked: rotate it, and share secrets through your password "
                  "manager or vault, never in chat.",
    "financial": "Card and bank numbers don't belong in Slack: refer to the last four digits or the ticket.",
    "government_id": "Government ids don't belong in Slack: refer to the record in the system that holds it.",
    "personal": "Dates of birth don't belong in Slack: refer to the record instead.",
    "contact": "Check that sharing this contact detail is OK for the person it belongs to.",
    "network": "Check that this address is fine to share in this channel.",
}


@dataclass(frozen=True)
class Summary:
    """What was found, in shapes only: the only thing about findings that a builder may show."""

    verdict: str
    entity_types: tuple[str, ...]
    rule_ids: tuple[str, ...]
    categories: tuple[str, ...]

    @classmethod
    def from_outcome(cls, outcome) -> Summary:
        acted = [a.finding for a in outcome.decision.actions if a.action != "allow"]
        return cls(outcome.verdict, tuple(outcome.decision.entity_types), tuple(outcome.decision.rule_ids),
                   tuple(sorted({f.category for f in acted})))

    @property
    def kinds(self) -> str:
        return ", ".join(f"`{t}`" for t in self.entity_types) or "nothing"

    @property
    def rules(self) -> str:
        return ", ".join(self.rule_ids) or "none"

    @property
    def fixes(self) -> list[str]:
        return [FIXES[c] for c in self.categories if c in FIXES]


# --- small pieces ------------------------------------------------------------------------------------------


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int = MAX_SECTION_TEXT) -> dict:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict:
    return {"type": "mrkdwn", "text": clip(text, limit)}


def section(text: str) -> dict:
    return {"type": "section", "text": mrkdwn(text)}


def context(text: str) -> dict:
    return {"type": "context", "elements": [mrkdwn(text)]}


def button(text: str, action_id: str, value: str, style: str | None = None, confirm: dict | None = None) -> dict:
    element = {"type": "button", "text": plain(text, MAX_BUTTON_TEXT), "action_id": action_id, "value": value}
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def quoted(text: str, limit: int = MAX_SECTION_TEXT) -> str:
    """`text` as a mrkdwn block quote, clipped so the quote markers fit too."""
    lines = text.splitlines() or [""]
    body = "\n".join("> " + line for line in lines)
    return clip(body, limit)


# --- /safe and shortcut: the preview ------------------------------------------------------------------------


def preview(held_id: str, redacted_text: str, summary: Summary, *, can_send_original: bool, can_edit: bool,
            ttl_minutes: int) -> dict:
    """The sender's ephemeral preview: what *Send redacted* would post, and the choices they have."""
    if summary.verdict == "block":
        lead = f":no_entry: *Not posted yet.* Your message contains {summary.kinds}, which must not be posted to Slack."
    else:
        lead = f":shield: *Not posted yet.* Your message contains {summary.kinds}."
    buttons = [button("Send redacted", SEND_REDACTED, held_id, style="primary")]
    if can_edit:
        buttons.append(button("Edit", EDIT, held_id))
    if can_send_original:
        buttons.append(button("Send original with a reason", SEND_ORIGINAL, held_id))
    buttons.append(button("Cancel", CANCEL, held_id))
    notes = [f"Rules: {summary.rules}.", f"Your original is held encrypted for {ttl_minutes} min, then erased."]
    if not can_send_original:
        notes.append("Policy does not allow sending the original.")
    blocks = [section(lead), section("*Send redacted* will post:\n" + quoted(redacted_text)),
              *[section(fix) for fix in summary.fixes],
              {"type": "actions", "block_id": "safe_choices", "elements": buttons}, context(" ".join(notes))]
    return {"text": clip(f"Not posted yet: your message contains {', '.join(summary.entity_types)}.", 3000),
            "blocks": blocks}


def status(text: str) -> dict:
    """A one-line ephemeral answer (replaces a preview or a warning)."""
    return {"text": clip(text, MAX_SECTION_TEXT), "blocks": [section(text)]}


def sent_by(text: str, user: str | None, how: str) -> dict:
    """What is posted for the sender: their text, and who sent it through the app."""
    body = {"text": clip(text, MAX_MESSAGE_TEXT)}
    if len(text) <= MAX_SECTION_TEXT:
        by = f"Sent by <@{user}> via {how}" if user else f"Sent via {how}"
        body["blocks"] = [section(text), context(by)]
    return body


# --- modals --------------------------------------------------------------------------------------------------


def text_input(block_id: str, action_id: str, label: str, initial: str = "", *, multiline: bool = True,
               placeholder: str = "", optional: bool = False) -> dict:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": action_id, "multiline": multiline,
                               "max_length": MAX_INPUT_VALUE}
    if initial:
        element["initial_value"] = clip(initial, MAX_INPUT_VALUE)
    if placeholder:
        element["placeholder"] = plain(placeholder, MAX_PLACEHOLDER)
    return {"type": "input", "block_id": block_id, "label": plain(label, MAX_LABEL), "element": element,
            "optional": optional}


def modal(callback_id: str, title: str, blocks: list[dict], *, submit: str, metadata: str = "") -> dict:
    return {"type": "modal", "callback_id": callback_id, "title": plain(title, MAX_VIEW_TITLE),
            "submit": plain(submit, MAX_VIEW_TITLE), "close": plain("Cancel", MAX_VIEW_TITLE),
            "private_metadata": metadata, "blocks": blocks}


def edit_modal(held_id: str, original_text: str) -> dict:
    """Edit: the original, prefilled (the sender's own text, shown only to them); re-scanned on submit."""
    return modal(EDIT_VIEW, "Edit before sending", [
        section("Change or remove the flagged values. The text is scanned again when you press *Scan and send*."),
        text_input(MESSAGE_BLOCK, MESSAGE_INPUT, "Message", original_text),
    ], submit="Scan and send", metadata=held_id)


def reason_modal(held_id: str, summary: Summary) -> dict:
    """Send original: the sender says why; the reason (redacted) goes to the audit trail."""
    return modal(REASON_VIEW, "Send the original", [
        section(f"Your message contains {summary.kinds}. Sending it unredacted is recorded for the security "
                "team with your reason."),
        text_input(REASON_BLOCK, REASON_INPUT, "Why does this need the original?",
                   placeholder="e.g. the customer asked us to confirm this number", multiline=False),
    ], submit="Send original", metadata=held_id)


def compose_modal(channel_id: str | None = None, text: str = "") -> dict:
    """The shortcut's composer: message and destination; scanned on submit like /safe."""
    select: dict[str, Any] = {"type": "conversations_select", "action_id": CHANNEL_INPUT,
                              "default_to_current_conversation": True,
                              "filter": {"include": ["public", "private"], "exclude_bot_users": True}}
    if channel_id:
        select["initial_conversation"] = channel_id
    return modal(COMPOSE_VIEW, "Send safely", [
        text_input(MESSAGE_BLOCK, MESSAGE_INPUT, "Message", text,
                   placeholder="Scanned for personal data and secrets before it is posted"),
        {"type": "input", "block_id": CHANNEL_BLOCK, "label": plain("Post in"), "element": select},
    ], submit="Scan and send")


# --- passive warnings and DMs --------------------------------------------------------------------------------


def passive_warning(held_id: str, channel: str, summary: Summary, *, can_edit: bool, ttl_minutes: int,
                    authorise: str = "") -> dict:
    """The ephemeral (or DM) warning after a message with findings was posted directly. `authorise` says how to
    let the app edit as the sender (the /slack/install link, or why there is none); shown when it cannot yet."""
    lead = (f":warning: Your message in <#{channel}> contains {summary.kinds}. Everyone in the channel can see "
            "it, and Slack keeps it.")
    confirm = {"title": plain("Delete your message?", MAX_CONFIRM_TITLE),
               "text": plain("It is removed from the channel for everyone.", MAX_CONFIRM_TEXT),
               "confirm": plain("Delete", MAX_CONFIRM_BUTTON), "deny": plain("Keep it", MAX_CONFIRM_BUTTON),
               "style": "danger"}
    buttons = [button("Redact my message", REDACT_MINE, held_id, style="primary"),
               button("Delete it", DELETE_MINE, held_id, style="danger", confirm=confirm),
               button("Not sensitive", NOT_SENSITIVE, held_id)]
    notes = [f"Rules: {summary.rules}.", f"These buttons work for {ttl_minutes} min."]
    if not can_edit:
        notes.append("I can only edit or delete your message if you have authorised this app for your account; "
                     "otherwise use ⋯ → Edit message yourself.")
        if authorise:
            notes.append(authorise)
    blocks = [section(lead), *[section(fix) for fix in summary.fixes],
              {"type": "actions", "block_id": "pii_choices", "elements": buttons}, context(" ".join(notes))]
    return {"text": clip(f"Your message contains {', '.join(summary.entity_types)}.", 3000), "blocks": blocks}


def blocked_dm(channel: str | None, summary: Summary, where: str) -> dict:
    """DM to a sender whose message was refused (the workflow step): what kinds, which rules, how to fix."""
    target = f" to <#{channel}>" if channel else ""
    blocks = [section(f":no_entry: Your message{target} from {where} was *not posted*: it contains "
                      f"{summary.kinds} (rules: {summary.rules})."),
              *[section(fix) for fix in summary.fixes],
              section("Remove or replace those values and run it again. The message itself was not kept.")]
    return {"text": clip(f"Your message was not posted: it contains {', '.join(summary.entity_types)}.", 3000),
            "blocks": blocks}


# --- validation ----------------------------------------------------------------------------------------------


def problems(payload: dict, *, surface: str = "message") -> list[str]:
    """Every Block Kit limit `payload` breaks (empty when it renders): a message body or a modal view."""
    found: list[str] = []
    blocks = payload.get("blocks", [])
    limit = MAX_VIEW_BLOCKS if surface == "modal" else MAX_MESSAGE_BLOCKS
    if len(blocks) > limit:
        found.append(f"{len(blocks)} blocks (max {limit})")
    if surface == "message":
        if len(payload.get("text") or "") > MAX_MESSAGE_TEXT:
            found.append("text too long")
    else:
        for key, cap in (("title", MAX_VIEW_TITLE), ("submit", MAX_VIEW_TITLE), ("close", MAX_VIEW_TITLE)):
            if key in payload:
                found += _text(payload[key], cap, key, plain_only=True)
        if len(payload.get("private_metadata", "")) > MAX_PRIVATE_METADATA:
            found.append("private_metadata too long")
        if len(payload.get("callback_id", "")) > MAX_ID:
            found.append("callback_id too long")
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    if len(block_ids) != len(set(block_ids)):
        found.append("duplicate block_id")
    for i, block in enumerate(blocks):
        found += [f"blocks/{i}: {p}" for p in _block(block, surface)]
    return found


def _text(obj: Any, cap: int, where: str, *, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"{where}: not a text object"]
    if plain_only and obj["type"] != "plain_text":
        return [f"{where}: must be plain_text"]
    text = obj.get("text", "")
    if not text:
        return [f"{where}: empty text"]
    return [f"{where}: {len(text)} chars (max {cap})"] if len(text) > cap else []


def _block(block: dict, surface: str) -> list[str]:
    kind = block.get("type")
    found = []
    if len(block.get("block_id", "")) > MAX_ID:
        found.append("block_id too long")
    if kind == "section":
        if "text" not in block and "fields" not in block:
            found.append("section without text or fields")
        if "text" in block:
            found += _text(block["text"], MAX_SECTION_TEXT, "text")
        fields = block.get("fields", [])
        if len(fields) > MAX_FIELDS:
            found.append(f"{len(fields)} fields (max {MAX_FIELDS})")
        for j, f in enumerate(fields):
            found += _text(f, MAX_FIELD_TEXT, f"fields/{j}")
        if "accessory" in block:
            found += _element(block["accessory"], "accessory")
    elif kind == "header":
        found += _text(block.get("text"), MAX_HEADER_TEXT, "header", plain_only=True)
    elif kind == "context":
        elements = block.get("elements", [])
        if not elements or len(elements) > MAX_CONTEXT_ELEMENTS:
            found.append(f"{len(elements)} context elements (1..{MAX_CONTEXT_ELEMENTS})")
        for j, e in enumerate(elements):
            found += _text(e, MAX_SECTION_TEXT, f"elements/{j}")
    elif kind == "actions":
        elements = block.get("elements", [])
        if not elements or len(elements) > MAX_ACTIONS_ELEMENTS:
            found.append(f"{len(elements)} action elements (1..{MAX_ACTIONS_ELEMENTS})")
        action_ids = [e.get("action_id") for e in elements]
        if len(action_ids) != len(set(action_ids)):
            found.append("duplicate action_id")
        for j, e in enumerate(elements):
            found += _element(e, f"elements/{j}")
    elif kind == "input":
        if surface != "modal":
            found.append("input block outside a modal")
        found += _text(block.get("label"), MAX_LABEL, "label", plain_only=True)
        found += _element(block.get("element", {}), "element")
    elif kind == "divider":
        pass
    else:
        found.append(f"unknown block type {kind!r}")
    return found


def _element(element: dict, where: str) -> list[str]:
    found = []
    kind = element.get("type")
    if len(element.get("action_id", "")) > MAX_ID:
        found.append(f"{where}: action_id too long")
    if kind == "button":
        found += _text(element.get("text"), MAX_BUTTON_TEXT, f"{where}/text", plain_only=True)
        if len(element.get("value", "")) > MAX_BUTTON_VALUE:
            found.append(f"{where}: value too long")
        if element.get("style") not in (None, "primary", "danger"):
            found.append(f"{where}: bad style")
        if "confirm" in element:
            c = element["confirm"]
            found += _text(c.get("title"), MAX_CONFIRM_TITLE, f"{where}/confirm/title", plain_only=True)
            found += _text(c.get("text"), MAX_CONFIRM_TEXT, f"{where}/confirm/text")
            found += _text(c.get("confirm"), MAX_CONFIRM_BUTTON, f"{where}/confirm/confirm", plain_only=True)
            found += _text(c.get("deny"), MAX_CONFIRM_BUTTON, f"{where}/confirm/deny", plain_only=True)
    elif kind == "plain_text_input":
        if len(element.get("initial_value", "")) > element.get("max_length", MAX_INPUT_VALUE):
            found.append(f"{where}: initial_value longer than max_length")
        if element.get("max_length", 0) > MAX_INPUT_VALUE:
            found.append(f"{where}: max_length over {MAX_INPUT_VALUE}")
        if "placeholder" in element:
            found += _text(element["placeholder"], MAX_PLACEHOLDER, f"{where}/placeholder", plain_only=True)
    elif kind in ("conversations_select", "channels_select", "users_select"):
        pass
    else:
        found.append(f"{where}: unknown element type {kind!r}")
    return found


def assert_renders(payload: dict, *, surface: str = "message") -> None:
    """Raise ValueError listing every broken limit (for tests and for the builders' own checks)."""
    found = problems(payload, surface=surface)
    if found:
        raise ValueError("Block Kit limits broken: " + "; ".join(found))


def names(items: Iterable[str]) -> str:
    return ", ".join(items) or "none"
