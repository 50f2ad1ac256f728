"""The only code that knows Slack's payload shapes and mrkdwn.

`extract_segments(payload)` walks every string and number leaf of a Web API payload (and object keys that are not
plain field names, such as unfurl URLs) into `Segment`s, except the documented non-content fields in
`NON_CONTENT` whose value has the expected shape; `reassemble(payload, edits)` writes changed texts back and
leaves every other byte of the structure alone. Each segment carries a `ScanText`: the text as recognizers should
see it (mention ids, specials and emoji blanked, mention/link/date labels kept, `&amp;` entities decoded,
invisible characters dropped, look-alike digits, letters, dashes and spaces folded to ASCII) plus the map from its
offsets back to the original, so redaction removes the original characters.
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

import regex


@dataclass(frozen=True)
class KeyName:
    """A path step naming an object key itself, not its value: keys such as unfurl URLs are content too."""

    name: str = field(repr=False)

    def __str__(self) -> str:
        return "{key}"


Path = tuple[str | int | KeyName, ...]

# Top-level fields that form bodies carry as JSON strings (Slack accepts both forms).
JSON_STRING_FIELDS = ("blocks", "attachments", "unfurls", "files", "metadata")
PLAIN_TEXT_TYPES = frozenset({"plain_text"})
RICH_TEXT_LEAVES = frozenset({"text", "link"})  # rich_text elements whose strings carry no markup
URL_KEYS = ("url", "link")  # key suffixes whose values are URLs (scanned as such; NER skips them)

# --- what is not content ------------------------------------------------------------------------------------
# A field is skipped only when its key is listed here AND its value has that key's shape; a `channel` holding a
# card number is scanned like any text. Everything else, including unknown keys, is scanned.
# NOTE: Slack ids are skipped by shape ([A-Z][A-Z0-9]+): Slack resolves them and refuses (never stores) an
# unknown id. Image URLs are skipped only without a query string or fragment and with few digits, so a signed
# URL or a value in a path is still scanned.
_ID = regex.compile(r"[A-Z][A-Z0-9]{1,14}(?:,\s*[A-Z][A-Z0-9]{1,14})*")
_TS = regex.compile(r"\d{1,10}(?:\.\d{1,6})?")
_ENUM = regex.compile(r"[a-z][a-z0-9_.\-]{0,63}")
_EMOJI = regex.compile(r":[a-z0-9_+'\-]{1,64}:(?::skin-tone-\d:)?")
_COLOR = regex.compile(r"#?[0-9A-Fa-f]{3,8}|good|warning|danger")
_IMAGE_URL = regex.compile(r"https?://[^\s?#<>|]{1,2000}")
_TOKEN = regex.compile(r"xox[a-z]-[A-Za-z0-9\-]{10,250}")
_MAX_DIGITS = {_ENUM: 4, _EMOJI: 4, _IMAGE_URL: 8}  # more digits than this: a value may hide in it, so scan
NON_CONTENT: dict[str, regex.Pattern] = {
    **dict.fromkeys(("channel", "channel_id", "channels", "user", "user_id", "users", "team", "team_id",
                     "bot_id", "app_id", "api_app_id", "enterprise_id", "id", "file", "file_id", "event_id",
                     "scheduled_message_id"), _ID),
    **dict.fromkeys(("ts", "thread_ts", "message_ts", "event_ts", "post_at", "latest", "oldest"), _TS),
    **dict.fromkeys(("type", "style", "subtype", "parse", "filetype", "response_type", "mrkdwn_in", "event_type",
                     "link_names", "unfurl_links", "unfurl_media", "reply_broadcast", "as_user", "mrkdwn",
                     "verbatim", "emoji", "short"), _ENUM),
    **dict.fromkeys(("icon_emoji",), _EMOJI),
    **dict.fromkeys(("color",), _COLOR),
    **dict.fromkeys(("image_url", "thumb_url", "icon_url", "author_icon", "footer_icon", "service_icon",
                     "image", "thumb_64", "thumb_80", "thumb_360"), _IMAGE_URL),
    "token": _TOKEN,  # the caller's credential, forwarded as sent
}
# Numbers shorter than this cannot hold any value a rule finds (the shortest, a US SSN, has 9 digits).
MIN_NUMBER_CHARS = 6
# Object keys that look like field names are structure; any other key (a URL, a card number) is scanned.
_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
_SAFE_PATH_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")


def is_structure(key: str | int | None, value: Any) -> bool:
    """True when `value` under `key` is one of the documented non-content fields, in its expected shape."""
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, (int, float)):
        text = _number_text(value)
        return len(text) < MIN_NUMBER_CHARS or (key in NON_CONTENT and NON_CONTENT[key] is _TS
                                                and bool(_TS.fullmatch(text)))
    shape = NON_CONTENT.get(key) if isinstance(key, str) else None
    if shape is None or not shape.fullmatch(value):
        return False
    limit = _MAX_DIGITS.get(shape)
    return limit is None or sum(c.isdigit() for c in value) <= limit


def is_field_name(key: str) -> bool:
    """Object keys that are plain field names (lowercase, few digits) are structure, not content."""
    return bool(_FIELD_NAME.fullmatch(key)) and sum(c.isdigit() for c in key) <= 4


def path_text(path: Path) -> str:
    """A path as a JSON-pointer-like string for logs, audit rows and errors: keys that are not field-name shaped
    (a URL, a card number used as a key) are shown as `*`, key segments as `{key}`; never content."""
    steps = []
    for step in path:
        if isinstance(step, str) and not (_SAFE_PATH_KEY.fullmatch(step) and sum(c.isdigit() for c in step) <= 4):
            steps.append("*")
        else:
            steps.append(str(step))
    return "/" + "/".join(steps)


def _number_text(value: int | float) -> str:
    return json.dumps(value)


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
        return path_text(self.path)


# --- normalising: what recognizers read ---------------------------------------------------------------------

ENTITY = {"&amp;": "&", "&lt;": "<", "&gt;": ">"}
# Characters that render as nothing (or only modify the one before) and so can be slipped between the digits of
# a value: every default-ignorable code point (zero-width space/joiners, word joiner, invisible operators
# U+2061-2064, BOM, bidi marks and isolates, soft hyphen, CGJ U+034F, Mongolian vowel separator U+180E, variation
# selectors, Hangul fillers, tags), every other format character (Cf) and combining marks (Mn, Me). They are
# dropped from the scan text; a finding that spans them removes them with the value.
INVISIBLE_CLASS = r"\p{Default_Ignorable_Code_Point}\p{Cf}\p{Mn}\p{Me}"
_INVISIBLE = regex.compile(r"[" + INVISIBLE_CLASS + r"]")
_SPECIAL = regex.compile(
    r"(?P<angle><(?P<inner>[^<>\n]{1,2000})>)"
    r"|(?P<entity>&(?:amp|lt|gt);)"
    r"|(?P<invisible>[" + INVISIBLE_CLASS + r"]+)"
    r"|(?P<emoji>(?<![\w:/]):(?P<name>[a-z0-9_+'\-]{1,64}):(?::skin-tone-\d:)?(?![\w:/]))"
)
_INNER = regex.compile(r"(?P<entity>&(?:amp|lt|gt);)|(?P<invisible>[" + INVISIBLE_CLASS + r"]+)")
_PLAIN_SPECIAL = regex.compile(r"(?P<invisible>[" + INVISIBLE_CLASS + r"]+)")
# Letters that look like ASCII ones and are used to slip a key past a pattern (Cyrillic and Greek capitals and
# lower case); fullwidth and mathematical forms fold through NFKC, digits of every script through their value.
CONFUSABLES = dict(zip(
    "АВЕКМНОРСТХУЅІЈаеорсуxхѕіјԁһӏΑΒΕΖΗΙΚΜΝΟΡΤΥΧοντ",
    "ABEKMHOPCTXYSIJaeopcyxxsijdhlABEZHIKMNOPTYXovt"))
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029"
_FOLD_CACHE_LIMIT = 8192  # distinct code points remembered; past that they are folded on each use (bounded memory)


def fold_char(char: str) -> str:
    """One character for one: the ASCII look-alike recognizers should read, or the character itself."""
    if char.isascii():
        return char
    if char in _LINE_BREAKS:
        return "\n"
    if char.isspace() or char == "\u2800":  # Unicode spaces and the blank braille pattern
        return " "
    if char.isdecimal():
        return str(unicodedata.decimal(char))
    digit = unicodedata.digit(char, None)  # superscripts, circled and other digit forms
    if digit is not None:
        return str(digit)
    if unicodedata.category(char) == "Pd" or char in "\u2212\u2043\ufe63\uff0d":
        return "-"
    if char in CONFUSABLES:
        return CONFUSABLES[char]
    folded = unicodedata.normalize("NFKC", char)
    if len(folded) == 1 and folded.isascii() and folded.isprintable():
        return folded
    return char


class _FoldToAscii(dict):
    """str.translate table over `fold_char`, caching a bounded number of code points."""

    def __missing__(self, codepoint: int) -> int:
        folded = ord(fold_char(chr(codepoint)))
        if len(self) < _FOLD_CACHE_LIMIT:
            self[codepoint] = folded
        return folded


_FOLD = _FoldToAscii()
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.DOTALL)
_FAST_PATH = re.compile(r"[<&:]")


def build_scan_text(text: str, kind: str = "mrkdwn") -> ScanText:
    """Decode one field value into what recognizers should read, keeping an exact offset map."""
    ascii_only = text.isascii()
    if kind != "mrkdwn":
        scan = _build(text, None if ascii_only else _PLAIN_SPECIAL, code=False)
    elif ascii_only and not _FAST_PATH.search(text):
        scan = ScanText(text=text, original=text)
        scan.code = [m.span() for m in _CODE.finditer(text)] if "`" in text else []
    else:
        scan = _build(text, _SPECIAL, code=True)
    if not ascii_only:
        scan.text = scan.text.translate(_FOLD)  # one char for one char: offsets are unchanged
    return scan


class _Emitter:
    """Builds the scan text piece by piece, recording for each piece the original span it stands for."""

    def __init__(self, scan: ScanText):
        self.scan, self.parts, self.length = scan, [], 0

    def __call__(self, piece: str, orig_start: int, orig_end: int, exact: bool) -> None:
        if not piece:
            return
        self.scan._scan_starts.append(self.length)
        self.scan._pieces.append((orig_start, orig_end, exact))
        self.parts.append(piece)
        self.length += len(piece)

    def text(self, text: str, start: int, end: int) -> None:
        """text[start:end] as content: entities decoded, invisible characters dropped (labels, link parts)."""
        position = start
        for match in _INNER.finditer(text, start, end):
            s, e = match.span()
            self(text[position:s], position, s, True)
            if match.lastgroup == "entity":
                self(ENTITY[match.group()], s, e, False)
            position = e
        self(text[position:end], position, end, True)


def _build(text: str, special: regex.Pattern | None, *, code: bool) -> ScanText:
    scan = ScanText(text=text, original=text)
    if special is None:
        return scan
    emit = _Emitter(scan)
    position = 0
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
            if sum(c.isdigit() for c in match.group("name")) > 4:  # `:4111-1111-…:` is no emoji: it is text
                emit.text(text, start, end)
                continue
            scan.protected.append((start, end))
            emit(" ", start, end, False)
        else:  # angle token
            inner = match.group("inner")
            if inner[:1] in "@#!":
                _special_token(text, start, end, inner, scan, emit)
                continue
            bar = inner.find("|")
            target_end = start + 1 + (bar if bar >= 0 else len(inner))
            label = (target_end + 1, end - 1) if bar >= 0 else None
            scan.links.append(Link(start, end, (start + 1, target_end), label))
            emit(" ", start, start + 1, False)
            emit.text(text, start + 1, target_end)
            if label:
                emit(" ", target_end, target_end + 1, False)
                emit.text(text, label[0], label[1])
            emit(" ", end - 1, end, False)
    emit(text[position:], position, len(text), True)
    scan.text = "".join(emit.parts)
    if not scan._pieces:
        scan._scan_starts, scan._pieces = [0], [(0, len(text), True)]
    if code and "`" in scan.text:
        scan.code = [m.span() for m in _CODE.finditer(scan.text)]
    return scan


def _special_token(text: str, start: int, end: int, inner: str, scan: ScanText, emit: _Emitter) -> None:
    """`<@U1|label>`, `<#C1|label>`, `<!here>`, `<!subteam^S1|@team>`, `<!date^ts^format^link|fallback>`.

    The id (and a date's timestamp) is protected: never redacted, never read. Labels, a date's format text, its
    optional link and its fallback are shown to people, so they are scanned like text; a redacted label is
    replaced in place and the token stays valid.
    """
    bar = inner.find("|")
    head_end = start + 1 + (bar if bar >= 0 else len(inner))  # end of `<@U1` / `<!date^…^fmt^link`
    if inner.startswith("!date^"):
        stamp_end = inner.find("^", 6)
        id_end = start + 1 + (stamp_end + 1 if 0 <= stamp_end < (bar if bar >= 0 else len(inner)) else
                              (bar if bar >= 0 else len(inner)))
        scan.protected.append((start, id_end))
        emit(" ", start, id_end, False)
        position = id_end
        for caret in [i for i in range(id_end, head_end) if text[i] == "^"] + [head_end]:
            emit.text(text, position, caret)
            if caret < head_end:
                emit(" ", caret, caret + 1, False)
            position = caret + 1
    else:
        scan.protected.append((start, head_end))
        emit(" ", start, head_end, False)
    if bar >= 0:
        scan.protected.append((head_end, head_end + 1))
        emit(" ", head_end, head_end + 1, False)
        emit.text(text, head_end + 1, end - 1)
    scan.protected.append((end - 1, end))
    emit(" ", end - 1, end, False)


# --- payload walking ----------------------------------------------------------------------------------------


class DuplicateKey(ValueError):
    """A JSON object names the same key twice: readers disagree on which copy wins, so it is refused."""

    def __init__(self, path: tuple[str | int, ...]):
        self.path = path
        super().__init__("duplicated key")


def loads_strict(text: str) -> Any:
    """json.loads that refuses duplicated keys at any depth (DuplicateKey carries the path to the second copy).

    Raises json.JSONDecodeError, DuplicateKey, or RecursionError for absurd nesting.
    """
    marked: list[bool] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict:
        value = _object(pairs)
        if isinstance(value, _Duplicated):
            marked.append(True)
        return value

    value = json.loads(text, object_pairs_hook=hook)
    if marked:
        raise DuplicateKey(_find_duplicate(value) or ())
    return value


class _Duplicated(dict):
    """A decoded JSON object that named `key` twice (only ever built on the way to a DuplicateKey)."""

    key: str = ""


def _object(pairs: list[tuple[str, Any]]) -> dict:
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    seen: set[str] = set()
    marked = _Duplicated(value)
    marked.key = next(k for k, _ in pairs if k in seen or seen.add(k))
    return marked


def _find_duplicate(root: Any) -> tuple[str | int, ...] | None:
    """The path of a duplicated key (outermost first), walking without recursion."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Duplicated):
            return path + (node.key,)
        if isinstance(node, dict):
            stack.extend((value, path + (key,)) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((item, path + (index,)) for index, item in enumerate(node))
    return None


def nesting_depth(root: Any, limit: int) -> int:
    """How deep containers nest in `root` (a scalar is 0), counting no further than limit + 1."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                return depth
            stack.extend((child, depth) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def json_text(value: Any) -> str:
    """JSON for forwarding: UTF-8 text, or ASCII escapes when the value holds lone surrogates (from `\\ud800`
    escapes), which have no UTF-8 form: kept escaped, as they came."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text


class FieldNotJson(ValueError):
    """A form-style JSON-string field (`blocks`, `attachments` …) that does not parse; names the field only."""

    def __init__(self, name: str, why: str):
        self.field = name
        super().__init__(f"{name} {why}")


def decode_json_fields(payload: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Parse form-style JSON-string fields (blocks, attachments ...) into objects; return the fields decoded.

    As strict as a JSON body: raises FieldNotJson naming the field when one does not parse (or nests absurdly
    deep), DuplicateKey with the path from the payload's top when a key inside is given twice.
    """
    decoded = dict(payload)
    names = []
    for name in JSON_STRING_FIELDS:
        value = decoded.get(name)
        if isinstance(value, str) and value.strip():
            try:
                decoded[name] = loads_strict(value)
            except json.JSONDecodeError as exc:
                raise FieldNotJson(name, f"is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
            except RecursionError:
                raise FieldNotJson(name, "is nested too deeply") from None
            except DuplicateKey as exc:
                raise DuplicateKey((name,) + exc.path) from None
            names.append(name)
    return decoded, names


def encode_json_fields(payload: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Inverse of decode_json_fields for the fields it decoded."""
    encoded = dict(payload)
    for name in names:
        encoded[name] = json_text(encoded[name])
    return encoded


def extract_segments(payload: Any) -> list[Segment]:
    """Every text Slack stores in a Web API payload (or a bare string), with its path and kind.

    Walks without recursion, so a payload nested thousands deep is walked, not a RecursionError.
    """
    if isinstance(payload, str):
        return [_segment((), payload, "mrkdwn")]
    return list(_walk(payload))


def _segment(path: Path, text: str, kind: str) -> Segment:
    return Segment(path=path, text=text, kind=kind, scan=build_scan_text(text, kind))


def _kind_for(key: str | int, inherited: str) -> str:
    return "url" if isinstance(key, str) and key.endswith(URL_KEYS) else inherited


def _walk(root: Any) -> Iterator[Segment]:
    # Stack of (node, path, inherited kind, key the node sits under); pushed in reverse to keep document order.
    stack: list[tuple[Any, Path, str, str | int | None]] = [(root, (), "mrkdwn", None)]
    while stack:
        node, path, inherited, key = stack.pop()
        if isinstance(node, list):
            # List items are judged by the key of the list (`mrkdwn_in: ["text"]`, `channels: [...]`).
            stack.extend((item, path + (index,), inherited, key) for index, item in reversed(list(enumerate(node))))
        elif isinstance(node, dict):
            kind = _node_kind(node, path, inherited)
            children = []
            for child_key, value in node.items():
                child = path + (child_key,)
                if not is_field_name(child_key):
                    key_kind = "url" if child_key.startswith(("http://", "https://")) else kind
                    children.append((child_key, path + (KeyName(child_key),), key_kind, None))
                children.append((value, child, _kind_for(child_key, kind), child_key))
            stack.extend(reversed(children))
        elif path and isinstance(path[-1], KeyName):
            yield _segment(path, node, inherited)
        elif isinstance(node, (str, int, float)) and not is_structure(key, node):
            if isinstance(node, str):
                if node:
                    yield _segment(path, node, inherited)
            else:
                yield _segment(path, _number_text(node), "plain")


def _node_kind(node: dict, path: Path, inherited: str) -> str:
    node_type = node.get("type")
    kind = "plain" if node_type in PLAIN_TEXT_TYPES else inherited
    if node_type in RICH_TEXT_LEAVES and "elements" not in node and "elements" in path:
        kind = "plain"
    if node.get("mrkdwn") is False:
        kind = "plain"
    return "mrkdwn" if kind == "url" else kind


def reassemble(payload: Any, edits: Mapping[Path, str]) -> Any:
    """A copy of `payload` with each edited path's value (or key) replaced; untouched parts equal the input.

    An edit that leaves a number's text unchanged keeps the number; a redacted number becomes a string.
    """
    if not edits:
        return payload
    if isinstance(payload, str):
        return edits.get((), payload)
    result = copy.deepcopy(payload)
    renames = []
    for path, text in edits.items():
        if path and isinstance(path[-1], KeyName):
            renames.append((path, text))
            continue
        node = _resolve(result, path[:-1])
        current = node[path[-1]]
        if isinstance(current, (int, float)) and not isinstance(current, bool) and _number_text(current) == text:
            continue
        node[path[-1]] = text
    # Keys last, deepest first: paths of edits under a renamed key still name the old key.
    for path, text in sorted(renames, key=lambda edit: -len(edit[0])):
        node = _resolve(result, path[:-1])
        old = path[-1].name
        if text != old and old in node:
            _rename(node, old, text)
    return result


def _resolve(node: Any, path: Path) -> Any:
    for step in path:
        node = node[step]
    return node


def _rename(node: dict, old: str, new: str) -> None:
    """Rename a key in place, keeping the order; a name already taken gets a numbered suffix."""
    candidate, number = new, 1
    while candidate in node and candidate != old:
        number += 1
        candidate = f"{new} ({number})"
    items = [(candidate if k == old else k, v) for k, v in node.items()]
    node.clear()
    node.update(items)

