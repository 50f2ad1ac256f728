"""Structured logging: one JSON object per line, level from settings (SLACK_PII_LOG_LEVEL), never content.

Log text comes from slack_pii/messages.py. Two leaks are closed here rather than trusted to callers: exception
messages are dropped (only the type and the frames are kept; a decode error can quote input), and the access
log writes the route, not the raw path or query string (webhook paths are secrets, query strings carry tokens).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback

from aiohttp.abc import AbstractAccessLogger

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
_HOOK_PATH = re.compile(r"^/services/.*")
METHOD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+")
_UPPER_RUN = re.compile(r"[A-Z0-9]{6}")


def is_method_name(name: str) -> bool:
    """Shaped like a Slack Web API method (`chat.postMessage`, `oauth.v2.access`, `files.getUploadURLExternal`):
    dotted words, few digits, no long capital runs. Anything else (a key or a card typed as a method) is neither
    forwarded nor logged."""
    return (len(name) <= 80 and bool(METHOD_NAME.fullmatch(name)) and sum(c.isdigit() for c in name) <= 2
            and not _UPPER_RUN.search(name))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
                 "msg": record.getMessage()}
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["traceback"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatException(self, exc_info) -> str:  # noqa: N802 - logging's name
        return f"{exc_info[0].__name__}\n" + "".join(traceback.format_tb(exc_info[2]))


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Replace the root handlers with one stderr handler in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # NOTE: at DEBUG aiosqlite logs every statement with its values (message text, tokens): never below WARNING.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)


def safe_path(path: str) -> str:
    """The request path as it may be logged: webhook secrets cut off."""
    return _HOOK_PATH.sub("/services/…", path)


class AccessLogger(AbstractAccessLogger):
    """aiohttp access log without query strings, webhook secrets, headers or client-supplied strings."""

    def log(self, request, response, time_taken: float) -> None:
        match_info = getattr(request, "match_info", None)  # absent on requests the HTTP parser refused
        route = match_info.route.resource if match_info is not None else None
        if match_info is None:
            path = "(malformed request)"
        elif route is None:
            path = "(no route)"  # a 404: the path is whatever the client typed
        else:
            path = route.canonical if "{" not in route.canonical else safe_path(request.path)
        if match_info is not None and "method" in match_info:
            method = match_info["method"]
            path = f"/api/{method}" if is_method_name(method) or is_method_name(method.lower()) else "/api/…"
        http_method = request.method if request.method.isalpha() and len(request.method) <= 10 else "?"
        self.logger.info("%s %s %s %.1f ms", http_method, path[:200], response.status, time_taken * 1000,
                         extra={"http_method": http_method, "path": path[:200], "status": response.status,
                                "ms": round(time_taken * 1000, 2)})


def monotonic_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
