"""The only code that knows Slack's payload shapes and mrkdwn.

`extract_segments(payload)` walks every text-bearing field of a Web API payload into `Segment`s;
`reassemble(payload, edits)` writes changed texts back and leaves every other byte of the structure alone.
Each segment carries a `ScanText`: the text as recognizers should see it (markup, mentions and emoji blanked,
`&amp;` entities decoded, zero-width characters dropped) plus the map from its offsets back to the original.
"""

from __future__ import annotations

import bisect
import copy
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]

# Keys whose string values are user-visible (and so stored by Slack). Everything else is structure:
# ids, action ids, styles, timestamps, image urls, emoji names.
TEXT_KEYS = frozenset({
    "text", "pretext", "fallback", "title", "footer", "value", "author_name", "initial_comment",
    "topic", "purpose", "alt_text", "placeholder", "hint", "label", "description", "url", "title_link",
    "author_link", "comment", "filename",
})
# Top-level fields that form bodies carry as JSON strings (Slack accepts both forms).
JSON_STRING_FIELDS = ("blocks", "attachments", "unfurls", "files", "metadata")
PLAIN_TEXT_TYPES = frozenset({"plain_text"})
RICH_TEXT_LEAVES = frozenset({"text", "link"})  # rich_text elements whose strings carry no markup


@dataclass(frozen=True)
class Link:
    """A mrkdwn link token `<target|label>`, in original-text offsets."""

    start: int
    end: int
    target: tuple[int, int]
    label: tuple[int, int] | None


@dataclass
class ScanText:
    """The text recognizers see, and how to map its offsets back to the original field value."""

    text: str
    original: str
    # Piecewise map: scan offsets where a piece starts, and the original span of each piece.
    _scan_starts: list[int] = field(default_factory=list, repr=False)
    _pieces: list[tuple[int, int, bool]] = field(default_factory=list, repr=False)  # (orig_start, orig_end, exact)
    protected: list[tuple[int, int]] = field(default_factory=list)  # original spans never to redact
    links: list[Link] = field(default_factory=list)
    code: list[tuple[int, int]] = field(default_factory=list)  # scan-text spans inside `code` / ```blocks```

    @property
    def identity(self) -> bool:
        return not self._pieces

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a scan-text span to the original text, widening to whole entities/characters."""
        if self.identity:
            return start, end
        return self._map(start, is_end=False), self._map(end - 1, is_end=True)

    def _map(self, position: int, *, is_end: bool) -> int:
        index = bisect.bisect_right(self._scan_starts, position) - 1
        orig_start, orig_end, exact = self._pieces[index]
        if exact:
            return orig_start + (position - self._scan_starts[index]) + (1 if is_end else 0)
        return orig_end if is_end else orig_start

    def ner_text(self) -> str:
        """Scan text with code spans blanked: NER cannot find names in code, and it is where time goes."""
        if not self.code:
            return self.text
        chars = list(self.text)
        for start, end in self.code:
            chars[start:end] = " " * (end - start)
        return "".join(chars)


@dataclass(frozen=True)
class Segment:
    """One text-bearing field of a payload: where it is, what kind of text it holds, and its scan view."""

    path: Path
    text: str
    kind: str  # "mrkdwn" | "plain" | "url"
    scan: ScanText = field(repr=False, compare=False, default=None)  # type: ignore[assignment]

    @property
    def where(self) -> str:
        """The path as a JSON-pointer-like string, for logs and errors (never the text)."""
        return "/" + "/".join(str(p) for p in self.path)


# --- mrkdwn -------------------------------------------------------------------------------------------------

ENTITY = {"&amp;": "&", "&lt;": "<", "&gt;": ">"}
# Format characters people (or attackers) put inside values: zero-width space/joiners, word joiner, BOM,
# bidi marks and isolates. They are dropped from the scan text so `4111\u200b1111...` is still a card.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u00ad"
_SPECIAL = re.compile(
    r"(?P<angle><(?P<inner>[^<>\n]{1,2000})>)"
    r"|(?P<entity>&(?:amp|lt|gt);)"
    r"|(?P<invisible>[" + INVISIBLE + r"]+)"
    r"|(?P<emoji>(?<![\w:/]):[a-z0-9_+'\-]{1,64}:(?::skin-tone-\d:)?(?![\w:/]))"
)
_PLAIN_SPECIAL = re.compile(r"(?P<invisible>[" + INVISIBLE + r"]+)")


class _FoldToAscii(dict):
    """str.translate table: Unicode decimal digits -> ASCII digits, Unicode spaces -> ' ' (one char each)."""

    def __missing__(self, codepoint: int) -> int | None:
        char = chr(codepoint)
        if codepoint < 128:
            folded = None
        elif char.isdecimal():
            folded = ord(str(unicodedata.decimal(char)))
        elif char.isspace() and char not in "\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029":
            folded = 32
        else:
            folded = None
        self[codepoint] = folded if folded is not None else codepoint
        return self[codepoint]


_FOLD = _FoldToAscii()
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.DOTALL)
_FAST_PATH = re.compile(r"[<&:\u00ad\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")


def build_scan_text(text: str, kind: str = "mrkdwn") -> ScanText:
    """Decode one field value into what recognizers should read, keeping an exact offset map."""
    ascii_only = text.isascii()
    if kind != "mrkdwn":
        scan = _build(text, _PLAIN_SPECIAL if _PLAIN_SPECIAL.search(text) else None, code=False)
    elif ascii_only and not _FAST_PATH.search(text):
        scan = ScanText(text=text, original=text)
        scan.code = [m.span() for m in _CODE.finditer(text)] if "`" in text else []
    else:
        scan = _build(text, _SPECIAL, code=True)
    if not ascii_only:
        scan.text = scan.text.translate(_FOLD)  # one char for one char: offsets are unchanged
    return scan


def _build(text: str, special: re.Pattern | None, *, code: bool) -> ScanText:
    scan = ScanText(text=text, original=text)
    if special is None:
        return scan
    parts: list[str] = []
    length = 0
    position = 0

    def emit(piece: str, orig_start: int, orig_end: int, exact: bool) -> None:
        nonlocal length
        if not piece:
            return
        scan._scan_starts.append(length)
        scan._pieces.append((orig_start, orig_end, exact))
        parts.append(piece)
        length += len(piece)

    for match in special.finditer(text):
        start, end = match.span()
        emit(text[position:start], position, start, True)
        position = end
        kind = match.lastgroup
        if kind == "entity":
            emit(ENTITY[match.group()], start, end, False)
        elif kind == "invisible":
            continue  # dropped: the next piece maps straight on
        elif kind == "emoji":
            scan.protected.append((start, end))
            emit(" ", start, end, False)
        else:  # angle token
            inner = match.group("inner")
            if inner[:1] in "@#!":  # <@U123>, <#C1|name>, <!here>, <!subteam^S1|@team>, <!date^...>
                scan.protected.append((start, end))
                emit(" ", start, end, False)
                continue
            bar = inner.find("|")
            target_end = start + 1 + (bar if bar >= 0 else len(inner))
            label = (target_end + 1, end - 1) if bar >= 0 else None
            scan.links.append(Link(start, end, (start + 1, target_end), label))
            emit(" ", start, start + 1, False)
            _emit_decoded(text, start + 1, target_end, emit)
            if label:
                emit(" ", target_end, target_end + 1, False)
                _emit_decoded(text, label[0], label[1], emit)
            emit(" ", end - 1, end, False)
    emit(text[position:], position, len(text), True)
    scan.text = "".join(parts)
    if not scan._pieces:
        scan._scan_starts, scan._pieces = [0], [(0, len(text), True)]
    if code and "`" in scan.text:
        scan.code = [m.span() for m in _CODE.finditer(scan.text)]
    return scan


def _emit_decoded(text: str, start: int, end: int, emit) -> None:
    """Emit text[start:end] with entities decoded (inside link targets and labels)."""
    position = start
    for match in re.finditer(r"&(?:amp|lt|gt);", text[start:end]):
        s, e = start + match.start(), start + match.end()
        emit(text[position:s], position, s, True)
        emit(ENTITY[match.group()], s, e, False)
        position = e
    emit(text[position:end], position, end, True)


# --- payload walking ----------------------------------------------------------------------------------------


def decode_json_fields(payload: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Parse form-style JSON-string fields (blocks, attachments ...) into objects; return the fields decoded.

    Raises ValueError naming the field when one is not valid JSON (the caller turns it into a Slack error).
    """
    decoded = dict(payload)
    names = []
    for name in JSON_STRING_FIELDS:
        value = decoded.get(name)
        if isinstance(value, str) and value.strip():
            try:
                decoded[name] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
            names.append(name)
    return decoded, names


def encode_json_fields(payload: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Inverse of decode_json_fields for the fields it decoded."""
    encoded = dict(payload)
    for name in names:
        encoded[name] = json.dumps(encoded[name], ensure_ascii=False, separators=(",", ":"))
    return encoded


def extract_segments(payload: Any) -> list[Segment]:
    """Every user-visible text in a Web API payload (or a bare string), with its path and kind."""
    if isinstance(payload, str):
        return [_segment((), payload, "mrkdwn")]
    return list(_walk(payload, (), "mrkdwn"))


def _segment(path: Path, text: str, kind: str) -> Segment:
    return Segment(path=path, text=text, kind=kind, scan=build_scan_text(text, kind))


def _walk(node: Any, path: Path, inherited: str) -> Iterator[Segment]:
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, path + (index,), inherited)
        return
    if not isinstance(node, dict):
        return
    node_type = node.get("type")
    kind = "plain" if node_type in PLAIN_TEXT_TYPES else inherited
    if node_type in RICH_TEXT_LEAVES and "elements" not in node and "elements" in path:
        kind = "plain"
    if node.get("mrkdwn") is False:
        kind = "plain"
    for key, value in node.items():
        child = path + (key,)
        if isinstance(value, str):
            if key in TEXT_KEYS and value:
                yield _segment(child, value, "url" if key.endswith(("url", "link")) else kind)
        elif isinstance(value, (dict, list)):
            yield from _walk(value, child, kind)


def reassemble(payload: Any, edits: Mapping[Path, str]) -> Any:
    """A copy of `payload` with each edited path's string replaced; untouched parts are equal to the input."""
    if not edits:
        return payload
    if isinstance(payload, str):
        return edits.get((), payload)
    result = copy.deepcopy(payload)
    for path, text in edits.items():
        node = result
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = text
    return result
