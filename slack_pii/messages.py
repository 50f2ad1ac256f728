"""Every log line and error text of the proxy, as small functions (bolt's logger/messages.py).

Reviewing "no raw values in logs or errors" means reading this file: arguments are method names, channel ids,
field paths, entity types, rule ids, counts and timings, never message text or tokens.
"""

from __future__ import annotations

from collections.abc import Iterable

# --- start-up and health ------------------------------------------------------------------------------------

LOCAL_SINK_WARNING = ("no Slack upstream configured: forwarding to the built-in LOCAL SINK (nothing reaches "
                      "Slack; what Slack would have received is stored in the local database)")


def listening(url: str, upstream: str, webhook_upstream: str) -> str:
    return f"slack-pii proxy listening on {url} (Web API upstream: {upstream}; webhooks: {webhook_upstream})"


def ready(url: str, seconds: float) -> str:
    return f"ready on {url} ({seconds:.1f} s)"


def sink_started(url: str) -> str:
    return f"local sink answering on {url}"


def shutting_down() -> str:
    return "shutting down: finishing in-flight requests"


def stopped() -> str:
    return "stopped; store closed"


# --- request handling -----------------------------------------------------------------------------------------


def request_done(source: str, method: str, action: str, status: int, latency_ms: float) -> str:
    return f"{source} {method}: {action}, status {status}, {latency_ms:.1f} ms"


def scan_failed_log(method: str, reason: str, forwarded: bool) -> str:
    then = "forwarded unscanned (on_scan_error=forward)" if forwarded else "refused (fail closed)"
    return f"scan of {method} failed ({reason}); {then}"


def scan_overrun(reason: str, pid: int | None, seconds: float) -> str:
    return f"scan worker {pid} stopped ({reason}) after {seconds:.2f} s; the request fails closed, a new worker replaces it"


def scan_worker_replaced(pid: int | None, reason: str) -> str:
    return f"scan worker {pid} replaced ({reason})"


def upstream_failed_log(method: str, kind: str, attempt: int) -> str:
    return f"upstream call for {method} failed ({kind}, attempt {attempt})"


def upstream_retry(method: str, kind: str, delay: float) -> str:
    return f"retrying {method} after {kind} in {delay:.2f} s"


def _names(items: Iterable[str]) -> str:
    return ", ".join(items) or "none"


def blocked_detail(entity_types: Iterable[str], rule_ids: Iterable[str]) -> str:
    """The human explanation a blocked sender gets: what kinds of data, which rules, how to fix it."""
    return (f"Message not sent: it contains data that must not be posted to Slack ({_names(entity_types)}; "
            f"rules: {_names(rule_ids)}). Remove or replace those values and send it again.")


def scan_failed_detail() -> str:
    return ("Message not sent: it could not be scanned for sensitive data in time. Nothing was forwarded; "
            "try again, and tell your Slack admins if it keeps happening.")


def scan_busy_detail() -> str:
    return ("Message not sent: the proxy is scanning as many messages as it can right now. Nothing was forwarded; "
            "retry in a moment.")


# --- errors answered to callers (Slack-shaped) ----------------------------------------------------------------


def unknown_method() -> str:
    return "Unknown or malformed Web API method name."


def invalid_json(line: int, column: int) -> str:
    return f"The JSON body does not parse (line {line}, column {column})."


def json_not_object() -> str:
    return "The JSON body must be an object."


def invalid_charset(where: str) -> str:
    return f"The {where} is not valid UTF-8."


def invalid_form(kind: str) -> str:
    return f"The {kind} body could not be parsed."


def unsupported_content_type() -> str:
    return "Send application/json, application/x-www-form-urlencoded or multipart/form-data."


def unsupported_encoding() -> str:
    return "Send the body uncompressed, or with Content-Encoding gzip or deflate."


def invalid_encoding() -> str:
    return "The body does not decode with its Content-Encoding."


def json_too_deep(path: str, limit: int) -> str:
    return f"`{path}` is nested more than {limit} levels deep."


def get_with_body() -> str:
    return "A GET request carries its arguments in the query string; send a body with POST."


def query_and_body(path: str) -> str:
    return f"`{path}` is given both in the query string and in the body; send it once."


def file_part_not_file(path: str) -> str:
    return f"`{path}` is sent as a file part; only `file` may be (send other arguments as fields)."


def malformed_request() -> str:
    return "The HTTP request is malformed (request line, headers or framing) and was not read."


def internal_error() -> str:
    return "The proxy failed on this request; nothing was forwarded. Tell your Slack admins if it keeps happening."


def http_error_log(status: int, error_type: str) -> str:
    return f"HTTP {status} answered ({error_type}); the request was not forwarded"


def body_too_large(limit: int) -> str:
    return f"The request body is larger than {limit} bytes."


def field_must_be(path: str, kind: str) -> str:
    return f"`{path}` must be {kind}."


def field_required(path: str) -> str:
    return f"`{path}` is required for this method."


def field_not_json(path: str) -> str:
    return f"`{path}` is not valid JSON."


def text_too_long(path: str, limit: int) -> str:
    return f"`{path}` is longer than {limit} characters."


def too_many_blocks(path: str, limit: int) -> str:
    return f"`{path}` has more than {limit} blocks."


def duplicate_field(path: str) -> str:
    return f"`{path}` is given more than once."


def upstream_timeout(seconds: float) -> str:
    return f"Slack did not answer within {seconds:g} s; the message may or may not have been posted."


def upstream_unreachable() -> str:
    return "Slack could not be reached; the message was not sent."


def upstream_broken() -> str:
    return "The connection to Slack broke before it answered; the message may or may not have been posted."


# --- the Bolt app (Slack events, buttons, the workflow step, Socket Mode) --------------------------------------


def bolt_refused(reason: str, status: int) -> str:
    return f"/slack/events request refused: {reason} (status {status})"


def duplicate_event(kind: str) -> str:
    return f"duplicate {kind} delivery ignored (already processed)"


def bolt_scan_failed(where: str, reason: str) -> str:
    return f"bolt {where}: scan failed ({reason}); nothing posted"


def bolt_api_failed(method: str, error: str) -> str:
    return f"bolt: Web API {method} failed ({error})"


def purged_held(count: int) -> str:
    return f"purged {count} expired held message(s)"


def socket_mode_started() -> str:
    return "Socket Mode connected (events arrive over the websocket; no public URL needed)"


def socket_mode_needs_slack() -> str:
    return ("Socket Mode cannot run against the local sink (it has no websocket): not started. Unset "
            "SLACK_PII_UPSTREAM_URL=local to connect to Slack, or use HTTP mode (SLACK_SIGNING_SECRET)")


def workflow_post_failed() -> str:
    return "Slack refused to post the message (check that the app can post in that channel)."


# --- OAuth (/slack/install, /slack/oauth_redirect): never the code, the state or the token ----------------------


def oauth_refused(path: str, reason: str) -> str:
    return f"{path} refused: {reason}"


def oauth_exchange_failed(error: str) -> str:
    return f"OAuth: oauth.v2.access failed ({error}); no token saved"


def oauth_authorised(scopes: str) -> str:
    return f"OAuth: a user authorised the app (user scopes: {scopes}); token saved encrypted"


# --- config reload ------------------------------------------------------------------------------------------


def reload_applied(reason: str, old: str, new: str, ms: float) -> str:
    return f"config reloaded ({reason}): version {old} -> {new} in {ms:.0f} ms"


def reload_unchanged(reason: str, version: str) -> str:
    return f"config reload ({reason}): files unchanged, version {version} stays"


def reload_rejected(reason: str, count: int, version: str) -> str:
    return f"config reload ({reason}) REJECTED: {count} problem(s); still running version {version}"


def reload_problem(problem: object) -> str:
    return f"config reload rejected: {problem}"


def reload_failed(reason: str, error: str, version: str) -> str:
    return f"config reload ({reason}) failed while building ({error}); still running version {version}"


def allow_list_updated(count: int) -> str:
    return f"allow-list from feedback: {count} fingerprint(s) in force"


def allow_list_refresh_failed(error: str, then: str) -> str:
    return f"allow-list refresh failed ({error}); {then}"


def sighup_unavailable() -> str:
    return "SIGHUP reload not available in this process"


# --- history scans and remediation (export-scan, history-scan, remediate) -------------------------------------


def history_not_export(path: str, why: str) -> str:
    return (f"{path}: not a Slack workspace export ({why}); point EXPORT at the .zip an admin downloads "
            "(Workspace settings > Import/Export Data) or at its unpacked folder")


def history_other_source(out: str, source: str) -> str:
    return (f"{out}: this report folder holds a scan of {source}; resume with that source, or pass a new --out "
            "for a different one")


def history_other_plan(out: str, plan: str | None) -> str:
    if plan is None:
        return f"{out}: this scan was started without --plan; resume it without one, or pass a new --out"
    return f"{out}: this scan writes its plan to {plan}; pass --plan {plan} to resume, or a new --out"


def history_no_token() -> str:
    return ("no token: set SLACK_USER_TOKEN (an admin's xoxp-, sees every conversation) or "
            "SLACK_BOT_TOKEN (xoxb-, sees the conversations the app is in)")


def history_local_upstream() -> str:
    return ("SLACK_PII_UPSTREAM_URL is the built-in local sink, which keeps no conversation history; "
            "set SLACK_PII_UPSTREAM_URL to https://slack.com/api/ (or a test double's /api/ URL)")


def history_api_failed(method: str, error: str) -> str:
    return f"{method} failed: {error}"


def remediation_plan_unreadable(path: str, line: int, why: str) -> str:
    return f"{path}: line {line}: {why}; regenerate the plan with `slack-pii export-scan ... --plan {path}`"
# --- files (uploads and shared files): sizes, types and counts, never names or content ------------------------


def file_empty() -> str:
    return "The file is empty (0 bytes): there is nothing to upload."


def file_too_large(size: int, limit: int) -> str:
    return (f"The file is {size} bytes, over the {limit}-byte limit for scanned files "
            "(SLACK_PII_FILE_MAX_BYTES or files.max_bytes in the policy). Split it or share it another way.")


def file_too_much_text(limit: int) -> str:
    return f"The file holds more than {limit} characters of text (SLACK_PII_FILE_MAX_TEXT_CHARS); split it."


def file_type_mismatch(extension: str) -> str:
    return (f"The file's name ends in .{extension[:16]} but its content is a different kind of file; "
            "rename it to what it is and upload it again.")


def file_not_text() -> str:
    return "The file is named as text but is binary or in an unknown encoding; save it as UTF-8 text."


def file_corrupt(kind: str) -> str:
    return f"The {kind} file is truncated or corrupt and cannot be read; export it again."


def file_encrypted(kind: str) -> str:
    return f"The {kind} file is encrypted or password-protected, so it cannot be scanned; upload it unprotected."


def zip_too_many_entries(count: int, limit: int) -> str:
    return f"The archive has {count} entries, over the limit of {limit} (SLACK_PII_FILE_MAX_ZIP_ENTRIES)."


def zip_too_big(size: int, limit: int) -> str:
    return (f"The archive unpacks to {size} bytes, over the limit of {limit} "
            "(SLACK_PII_FILE_MAX_UNPACKED_BYTES).")


def zip_ratio(ratio: float, limit: float) -> str:
    return (f"The archive expands {ratio:.0f} times its size, over the limit of {limit:.0f} "
            "(SLACK_PII_FILE_MAX_ZIP_RATIO): refused as a possible zip bomb.")


def zip_nested() -> str:
    return "The archive holds another archive; only one level is scanned. Upload the inner archive's files."


def file_blocked_detail(entity_types: Iterable[str], rule_ids: Iterable[str]) -> str:
    return (f"File not uploaded: it contains data that must not be shared in Slack ({_names(entity_types)}; "
            f"rules: {_names(rule_ids)}). Remove those values and upload it again.")


def file_refused_detail(reason: str) -> str:
    return f"File not uploaded: {reason}"


def file_refused_earlier(reason: str) -> str:
    return f"File not shared: its upload was refused ({reason}). Fix the file and upload it again."


def upload_url_invalid() -> str:
    return ("this upload URL is unknown, already used, expired or for another file; call "
            "files.getUploadURLExternal again (SLACK_PII_FILE_UPLOAD_TTL_SECONDS)")


def upload_url_untrusted() -> str:
    return "the upstream answered an upload_url that is neither on *.slack.com nor on the upstream's host"


def upload_renew_failed() -> str:
    return "could not get an upload URL for the redacted file's new length from the upstream"


def file_scanned(method: str, file_type: str, size: int, action: str, entities: dict[str, int], error: str,
                 latency_ms: float) -> str:
    found = ", ".join(f"{entity}={count}" for entity, count in sorted(entities.items())) or "none"
    return (f"file via {method}: {file_type}, {size} bytes: {action} (findings: {found}"
            + (f"; {error}" if error else "") + f"), {latency_ms:.1f} ms")


def file_fetch_failed(reason: str) -> str:
    return f"shared file not fetched for scanning ({reason})"
# --- store (SQLite or PostgreSQL) ------------------------------------------------------------------------------
# Never the database URL: it can carry a password.

STORE_UNAVAILABLE_CODE = "pii_store_unavailable"


def store_unreachable(error: str) -> str:
    return (f"the store's database is unreachable ({error}); nothing was forwarded or taken, try again "
            "(fix: check SLACK_PII_DATABASE_URL and that the database is up)")


def store_failed(error: str) -> str:
    return f"store: database call failed ({error}); the request fails closed"


def store_migrated(dialect: str, versions: list[int]) -> str:
    return f"store: {dialect} schema migrated to version {max(versions)} (applied {versions})"


def store_url_invalid(scheme: str) -> str:
    return (f"unsupported scheme {scheme!r} (fix: postgresql://user@host/db, or unset it for the SQLite file in "
            "SLACK_PII_DATA_DIR)")


def purge_skipped(error: str) -> str:
    return f"purge of expired held messages skipped ({error}); retried next round"


def audit_lost(method: str, error: str) -> str:
    return f"audit event for {method} not recorded ({error}); the caller was answered"
