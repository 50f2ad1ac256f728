"""The `files:` section of the policy: what happens to an uploaded file, by type, once its findings are known.

Parsed by `policy.collect_policy`; kept apart so the message policy stays about messages. Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slack_pii.errors import ConfigProblem

# File types the extractors know, and the ones whose bytes can be rewritten faithfully (text-like).
FILE_TYPES = ("text", "csv", "json", "yaml", "pdf", "docx", "xlsx", "zip", "image")
REWRITABLE = frozenset({"text", "csv", "json", "yaml"})
DEFAULT_TYPES = {"text": "redact", "csv": "redact", "json": "redact", "yaml": "redact", "pdf": "block",
                 "docx": "block", "xlsx": "block", "zip": "block", "image": "block"}
REDACTION_STYLES = ("mask", "label")


@dataclass(frozen=True)
class FilePolicy:
    """`types`: the action for a file of that type holding redact- or block-level findings (redact rewrites
    text-like files in place; a block-level finding blocks unless the type says allow). `max_bytes`: larger
    files are refused. `unreadable`: encrypted, corrupt, mislabelled or hostile files (zip bombs). `unscanned`:
    types with no extractor (audio, video, binaries; images when OCR is not installed). `redaction`: mask keeps
    the byte length (what Slack announced); label writes [ENTITY] and re-announces the new length."""

    types: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TYPES))
    max_bytes: int = 25 * 1024 * 1024
    unreadable: str = "block"
    unscanned: str = "allow"
    redaction: str = "mask"

    def action_for(self, file_type: str) -> str:
        return self.types.get(file_type, "block")


def parse_file_policy(raw: object, file: str, problems: list[ConfigProblem], actions: tuple[str, ...]) -> FilePolicy:
    """The `files:` mapping (absent: the defaults); each problem names the key and the fix."""
    if raw is None:
        return FilePolicy()
    if not isinstance(raw, dict):
        problems.append(ConfigProblem(file, None, "files: must be a mapping", "see recognizers/policy.yaml"))
        return FilePolicy()

    def action(value: object, where: str, default: str) -> str:
        if value not in actions:
            problems.append(ConfigProblem(file, None, f"{where}: unknown action {value!r}", f"one of {', '.join(actions)}"))
            return default
        return str(value)

    types = dict(DEFAULT_TYPES)
    for name, value in (raw.get("types") or {}).items():
        if name not in FILE_TYPES:
            problems.append(ConfigProblem(file, None, f"files.types: unknown file type {name!r}",
                                          f"one of {', '.join(FILE_TYPES)}"))
            continue
        types[name] = action(value, f"files.types.{name}", DEFAULT_TYPES[name])
        if types[name] == "redact" and name not in REWRITABLE:
            problems.append(ConfigProblem(file, None, f"files.types.{name}: {name} files cannot be rewritten",
                                          "use block, warn or allow"))
            types[name] = "block"
    max_bytes = raw.get("max_bytes", FilePolicy.max_bytes)
    if not isinstance(max_bytes, int) or max_bytes <= 0:
        problems.append(ConfigProblem(file, None, "files.max_bytes: not a positive number of bytes", "e.g. 26214400"))
        max_bytes = FilePolicy.max_bytes
    redaction = raw.get("redaction", "mask")
    if redaction not in REDACTION_STYLES:
        problems.append(ConfigProblem(file, None, f"files.redaction: {redaction!r}", "mask or label"))
        redaction = "mask"
    unreadable = action(raw.get("unreadable", "block"), "files.unreadable", "block")
    unscanned = action(raw.get("unscanned", "allow"), "files.unscanned", "allow")
    for where, value in (("unreadable", unreadable), ("unscanned", unscanned)):
        if value == "redact":  # nothing was read, so there is nothing to redact
            problems.append(ConfigProblem(file, None, f"files.{where}: redact is not possible here",
                                          "use block, warn or allow"))
    return FilePolicy(types, max_bytes, "block" if unreadable == "redact" else unreadable,
                      "block" if unscanned == "redact" else unscanned, redaction)
