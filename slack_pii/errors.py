"""The small exception family. Raised in the middle, caught at the edge (aiohttp handler, Bolt listener, CLI)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a recognizer or policy file, said so a security engineer can fix it."""

    file: str
    rule_id: str | None
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.file}: rule `{self.rule_id}`" if self.rule_id else self.file
        return f"{where}: {self.message}" + (f" (fix: {self.fix})" if self.fix else "")


class SlackPiiError(Exception):
    """Base of our errors; messages never contain scanned values."""


class ConfigError(SlackPiiError):
    def __init__(self, problems: list[ConfigProblem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid configuration")


class PayloadError(SlackPiiError):
    """The request is not something Slack would accept. `code` is a Slack-style error code, `path` the field."""

    def __init__(self, code: str, detail: str, path: str = ""):
        self.code, self.detail, self.path = code, detail, path
        super().__init__(f"{code}: {detail}" + (f" (at {path})" if path else ""))


class DetectionError(SlackPiiError):
    """Scanning failed or ran over its time budget; the caller must fail closed unless told otherwise."""


class UpstreamError(SlackPiiError):
    """Slack (or the configured upstream) could not be reached or answered with a failure."""
