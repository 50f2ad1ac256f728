"""Audit events: what was decided about a message, in shapes only (entity types, counts, rule ids, action).

Each event is a frozen dataclass with a `name`, like datasette's events. No field ever holds a scanned value or a
token: callers are keyed-HMAC fingerprints, and the store writes `to_record()` and nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from slack_pii.detect.slack_text import path_text

# Columns of audit_events that events fill; anything else an event carries goes into `detail` (JSON).
COLUMNS = ("source", "method", "channel", "caller", "action", "entities", "rules", "latency_ms", "status",
           "config_version")


@dataclass(frozen=True)
class AuditEvent:
    """Base of every audited event; subclasses set `name` and add fields."""

    name: ClassVar[str] = "event"

    def to_record(self) -> dict[str, Any]:
        values = asdict(self)
        record = {column: values.pop(column, None) for column in COLUMNS}
        record["name"] = self.name
        record["detail"] = values
        return record


@dataclass(frozen=True)
class MessageScanned(AuditEvent):
    """A text-bearing request was scanned and the policy's verdict applied.

    Recorded after the caller was answered: `action` is the verdict (allow, warn, redact, block) and `status`
    the HTTP status the caller got (Slack's own, for forwarded calls).
    """

    name: ClassVar[str] = "message_scanned"
    source: str  # "webapi" or "webhook"
    method: str
    channel: str | None
    caller: str | None  # keyed fingerprint of the token (or of the webhook path), never the token
    action: str
    entities: dict[str, int] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    status: int | None = None
    config_version: str = ""
    findings: list[dict] = field(default_factory=list)  # explain(outcome)["findings"]: why each finding fired
    suppressed: list[dict] = field(default_factory=list)  # explain(outcome)["suppressed"]: what allow-lists let through


@dataclass(frozen=True)
class ScanFailed(AuditEvent):
    """Detection raised or ran over its time budget; `action` says whether the message was refused or forwarded."""

    name: ClassVar[str] = "scan_failed"
    source: str
    method: str
    channel: str | None
    caller: str | None
    action: str  # "block" (fail closed) or "forward" (on_scan_error: forward)
    reason: str = ""  # "timeout" or the exception class name
    latency_ms: float = 0.0
    status: int | None = None
    config_version: str = ""


@dataclass(frozen=True)
class FileScanned(AuditEvent):
    """A file's bytes were scanned (a sidecar upload, or a file the Bolt app fetched) and the verdict applied.

    Shapes only: the file id, its type and size, per-entity counts and rule ids; never its name, a value or a
    cell. `error` says why an unreadable file was refused (file_encrypted, file_archive_refused ...).
    """

    name: ClassVar[str] = "file_scanned"
    source: str  # "webapi" or "bolt"
    method: str  # files.upload, the upload URL ("files.upload_url"), or the Bolt event type
    channel: str | None
    caller: str | None
    action: str
    file_id: str | None = None
    file_type: str = ""
    size: int = 0
    entities: dict[str, int] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    error: str = ""
    latency_ms: float = 0.0
    status: int | None = None
    config_version: str = ""
    findings: list[dict] = field(default_factory=list)


EXPLAIN_LIMIT = 100  # findings (and allow hits) kept per event; a pasted log can hold thousands


def explain(outcome) -> dict[str, list[dict]]:
    """Why a message got its verdict, for `MessageScanned(**..., **explain(outcome))`: never a value.

    Per finding: entity type, rule id, pattern name, score, the context words that raised it, where it was (field
    path) and the action with its reason (which names allow-list and threshold hits). Per suppressed candidate
    (placeholders, a rule's own allow regexes): entity type, rule id and reason, so a team sees what its
    exceptions let through.
    """
    findings = []
    for item in outcome.decision.actions[:EXPLAIN_LIMIT]:
        f = item.finding
        findings.append({"entity_type": f.entity_type, "rule": f.rule, "pattern": f.pattern,
                         "score": round(f.score, 3), "context_words": list(f.context_words),
                         "path": path_text(f.path), "action": item.action,
                         "reason": item.reason})
    suppressed = [{"entity_type": s.entity_type, "rule": s.rule, "reason": s.reason,
                   "path": path_text(s.path)}
                  for s in outcome.suppressed[:EXPLAIN_LIMIT]]
    return {"findings": findings, "suppressed": suppressed}
