"""Files: bytes in -> what kind of file -> text chunks (segments) -> findings -> one `FileOutcome`.

Pure: no network, no aiohttp, no SQLite. Every extractor is bounded by `FileLimits` and fails fast with a
`FileRejected` naming what is wrong (never content): empty, oversize, a name that lies about the content,
binary garbage, encrypted or truncated documents, zip bombs. Text-like files (txt, csv/tsv, json, yaml, logs,
source code) keep an exact map from every chunk back to the decoded file, so they can be redacted in place;
PDF, DOCX, XLSX, ZIP and images are read but never rewritten (the policy's `files.types` decides).
"""

from __future__ import annotations

import bisect
import io
import itertools
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from slack_pii import messages
from slack_pii.detect.files_policy import REWRITABLE, FilePolicy
from slack_pii.detect.policy import SEVERITY, decide
from slack_pii.keys import fingerprint
from slack_pii.detect.slack_text import Segment, build_scan_text
from slack_pii.errors import PayloadError

# Extensions by type. Anything else is sniffed: text if it decodes as text, unscanned otherwise.
TEXT_EXTENSIONS = frozenset("""
txt text log md markdown rst csv tsv json jsonl ndjson yaml yml toml ini cfg conf env properties xml html htm
py js mjs ts tsx jsx go java kt rb php sh bash zsh ps1 sql c h cc cpp hpp cs rs swift scala pl r tf hcl
pem key crt cer pub asc gpg-key netrc npmrc pypirc gitconfig dockerfile makefile gradle lock diff patch
""".split())
DOCUMENT_EXTENSIONS = {"pdf": "pdf", "docx": "docx", "xlsx": "xlsx", "xlsm": "xlsx", "zip": "zip"}
IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"})
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# NOTE: 4,000 characters: the engine's overlap resolution is quadratic in findings per segment (a customers
# CSV has one every ~25 characters), and per-call overhead is already small at this size.
CHUNK_CHARS = 4_000
BATCH = 32  # chunks per engine call
EXPLAIN_LIMIT = 100
# Codes whose handling the policy's `files.unreadable` decides; the rest are always refused.
UNREADABLE_CODES = frozenset({"file_unreadable", "file_encrypted", "file_type_mismatch", "file_archive_refused"})


class FileRejected(PayloadError):
    """The file cannot be scanned safely: `code` says why in Slack's style, `detail` says it to a person."""


@dataclass(frozen=True)
class FileLimits:
    """Bounds on every extractor, from settings (see config.py for meanings and defaults)."""

    max_bytes: int = 25 * 1024 * 1024
    max_unpacked_bytes: int = 100 * 1024 * 1024
    max_zip_entries: int = 1000
    max_zip_ratio: float = 100.0
    max_text_chars: int = 20_000_000
    ocr: bool = True
    ocr_timeout_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings) -> FileLimits:
        """Limits from settings; OCR is on when asked for and tesseract is installed (checked here, at start-up)."""
        return cls(settings.file_max_bytes, settings.file_max_unpacked_bytes, settings.file_max_zip_entries,
                   settings.file_max_zip_ratio, settings.file_max_text_chars, settings.file_ocr and ocr_available())


def ocr_available() -> bool:
    """Images are read only when the operator installed tesseract (Debian: tesseract-ocr)."""
    return shutil.which("tesseract") is not None


# --- what kind of file ----------------------------------------------------------------------------------------


def extension(name: str) -> str:
    path = PurePosixPath(name.replace("\\", "/"))
    suffix = path.suffix.lower().lstrip(".")
    return suffix or path.name.lower().lstrip(".")  # .env, .npmrc, Dockerfile


def sniff(data: bytes) -> str | None:
    """What the bytes say they are (pdf, zip, image), or None for anything else."""
    head = data[:16]
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    return None


def file_type(name: str, data: bytes, limits: FileLimits, max_bytes: int | None = None) -> str:
    """The file's type (text, csv, json, yaml, pdf, docx, xlsx, zip, image, or `unknown`); refuses empty and
    oversize files and names that lie about the content (a PDF called .txt, a .pdf that is not one)."""
    if not data:
        raise FileRejected("file_empty", messages.file_empty())
    limit = min(limits.max_bytes, max_bytes or limits.max_bytes)
    if len(data) > limit:
        raise FileRejected("file_too_large", messages.file_too_large(len(data), limit))
    ext, magic = extension(name), sniff(data)
    if ext in DOCUMENT_EXTENSIONS:
        wanted = DOCUMENT_EXTENSIONS[ext]
        if magic != ("pdf" if wanted == "pdf" else "zip"):
            raise FileRejected("file_type_mismatch", messages.file_type_mismatch(ext))
        return wanted
    if ext in IMAGE_EXTENSIONS:
        if magic != "image":
            raise FileRejected("file_type_mismatch", messages.file_type_mismatch(ext))
        return "image"
    if ext in TEXT_EXTENSIONS:
        if magic is not None:
            raise FileRejected("file_type_mismatch", messages.file_type_mismatch(ext))
        return {"csv": "csv", "tsv": "csv", "json": "json", "jsonl": "json", "ndjson": "json", "yaml": "yaml",
                "yml": "yaml"}.get(ext, "text")
    if magic == "zip":
        return _office_type(data) or "zip"
    if magic is not None:
        return magic
    return "text" if _looks_like_text(data) else "unknown"


def _office_type(data: bytes) -> str | None:
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist()[:2000])
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    return "docx" if "word/document.xml" in names else "xlsx" if "xl/workbook.xml" in names else None


def _looks_like_text(data: bytes) -> bool:
    try:
        decode_text(data[:65536], strict_tail=False)
        return True
    except FileRejected:
        return False


# --- text decoding ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str
    bom: bytes = b""

    def encode(self, text: str) -> bytes:
        return self.bom + text.encode(self.encoding)


def decode_text(data: bytes, *, strict_tail: bool = True) -> Decoded:
    """Bytes to text: a BOM wins, then strict UTF-8, then charset-normalizer's best guess; binary is refused."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            try:
                return Decoded(data[len(bom):].decode(encoding), encoding, bom)
            except UnicodeDecodeError:
                raise FileRejected("file_unreadable", messages.file_not_text()) from None
    if b"\x00" in data[:8192]:
        raise FileRejected("file_unreadable", messages.file_not_text())
    try:
        return Decoded(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError as exc:
        if not strict_tail and exc.start >= len(data) - 3:  # a sample cut inside a character
            return Decoded(data[:exc.start].decode("utf-8"), "utf-8")
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding is None or _control_share(str(best)) > 0.05:
        raise FileRejected("file_unreadable", messages.file_not_text())
    return Decoded(str(best), best.encoding)


def _control_share(text: str) -> float:
    sample = text[:8192]
    if not sample:
        return 0.0
    controls = sum(1 for c in sample if ord(c) < 32 and c not in "\t\n\r\x0c")
    return controls / len(sample)


# --- chunks: the text the engine reads, and where each piece came from ------------------------------------


@dataclass
class Chunk:
    """One engine segment built from pieces of the file. `pieces[i] = (chunk_offset, file_offset, length)`;
    file_offset is -1 when the piece cannot be written back (documents, archives, OCR)."""

    segment: Segment
    pieces: list[tuple[int, int, int]]
    _starts: list[int] | None = field(default=None, repr=False)

    def to_file(self, start: int, end: int) -> tuple[int, int] | None:
        """A finding's chunk span as a span of the decoded file, clipped to the piece it starts in."""
        if self._starts is None:
            self._starts = [p[0] for p in self.pieces]
        index = max(0, bisect.bisect_right(self._starts, start) - 1)
        chunk_at, file_at, length = self.pieces[index]
        if file_at < 0:
            return None
        lo = max(start, chunk_at) - chunk_at
        hi = min(end, chunk_at + length) - chunk_at
        if hi <= lo:
            return None
        return file_at + lo, file_at + hi


class _ChunkBuilder:
    """Packs pieces (with an optional context prefix like `ssn: `) into chunks of about CHUNK_CHARS."""

    def __init__(self, path: tuple, ner: bool):
        self.path, self.ner = path, ner
        self.parts: list[str] = []
        self.pieces: list[tuple[int, int, int]] = []
        self.length = 0
        self.count = 0

    def add(self, text: str, file_at: int, prefix: str = "", end: str = "\n") -> Chunk | None:
        """Append one piece (a chunk comes back once the builder is full)."""
        if prefix:
            self.parts.append(prefix)
            self.length += len(prefix)
        self.pieces.append((self.length, file_at, len(text)))
        self.parts += (text, end)
        self.length += len(text) + len(end)
        return self.flush() if self.length >= CHUNK_CHARS else None

    def flush(self) -> Chunk | None:
        if not self.pieces:
            return None
        text = "".join(self.parts)
        scan = build_scan_text(text, "plain")
        if not self.ner:
            # NOTE: marking the chunk as code is how the engine is told to skip NER: files are bulk text and
            # NER on megabytes costs minutes; it runs only when the policy acts on PERSON or LOCATION.
            scan.code = [(0, len(scan.text))]
        chunk = Chunk(Segment(self.path + (self.count,), text, "plain", scan), self.pieces)
        self.parts, self.pieces, self.length = [], [], 0
        self.count += 1
        return chunk


def text_chunks(text: str, ner: bool, path: tuple = ("text",)) -> Iterator[Chunk]:
    """Plain text, cut at line ends into chunks; each chunk is one exact piece of the file."""
    builder = _ChunkBuilder(path, ner)
    position, size = 0, len(text)
    while position < size:
        end = min(size, position + CHUNK_CHARS)
        if end < size:
            newline = text.rfind("\n", position, end)
            end = newline + 1 if newline > position else end
        # NOTE: a line longer than a chunk is cut where the chunk ends; a value straddling that cut can be missed.
        chunk = builder.add(text[position:end], position, end="") or builder.flush()
        yield chunk
        position = end


_HEADER = re.compile(r"[A-Za-z][\w .\-/()#]{0,40}")


def csv_chunks(text: str, ner: bool, delimiter: str | None = None) -> Iterator[Chunk]:
    """CSV/TSV as columns: each cell becomes `header: cell`, so a column named ssn or email is context for every
    cell under it; offsets map back to the raw cell (inside its quotes)."""
    delimiter = delimiter or _delimiter(text)
    cell = re.compile(r'"((?:[^"]|"")*)"|([^' + re.escape(delimiter) + r'"\r\n]*)')
    builder = _ChunkBuilder(("rows",), ner)
    header: list[str] | None = None
    position, size, first = 0, len(text), True
    while position < size:
        newline = text.find("\n", position)
        end = size if newline < 0 else newline
        if '"' not in text[position:end]:  # the common row: split, offsets by arithmetic
            row, at = [], position
            for value in text[position:end].removesuffix("\r").split(delimiter):
                row.append((value, at))
                at += len(value) + 1
            position = end + 1
        else:
            row, position = _quoted_row(text, position, cell, delimiter)
        if first:
            first = False
            names = [v.strip() for v, _ in row]
            if names and all(_HEADER.fullmatch(n) for n in names):
                header = names
                continue
        for index, (value, at) in enumerate(row):
            if value.strip():
                name = header[index] if header and index < len(header) else f"column {index + 1}"
                if (chunk := builder.add(value, at, f"{name}: ")) is not None:
                    yield chunk
    if (chunk := builder.flush()) is not None:
        yield chunk


def _quoted_row(text: str, position: int, cell: re.Pattern, delimiter: str) -> tuple[list[tuple[str, int]], int]:
    """One row with quoted cells (which may hold delimiters, doubled quotes and newlines); returns the row and
    where the next row starts."""
    row: list[tuple[str, int]] = []
    size = len(text)
    while True:
        match = cell.match(text, position)
        group = 1 if match.group(1) is not None else 2
        row.append((match.group(group), match.start(group)))
        position = match.end()
        sep = text[position:position + 1]
        if sep == delimiter:
            position += 1
            continue
        if sep and sep not in "\r\n":  # stray characters after a closing quote: keep them in the row
            end = text.find("\n", position)
            end = size if end < 0 else end
            row.append((text[position:end], position))
            position = end
        position += 2 if text.startswith("\r\n", position) else 1
        return row, position


def _delimiter(text: str) -> str:
    line = text[:text.find("\n")] if "\n" in text[:65536] else text[:65536]
    return max(",;\t|", key=line.count) if any(c in line for c in ",;\t|") else ","


_JSON_TOKEN = re.compile(r'"((?:[^"\\\n]|\\.)*)"(\s*:)?|(-?\d[\d.eE+\-]*)')


def json_chunks(text: str, ner: bool) -> Iterator[Chunk]:
    """JSON (and JSON Lines) walked as data: every string and number leaf as `key: value`, the nearest key
    as its context, offsets pointing at the raw token in the file."""
    builder = _ChunkBuilder(("values",), ner)
    key = ""
    for match in _JSON_TOKEN.finditer(text):
        if match.group(2):  # "name":
            key = match.group(1)[:60]
            continue
        group = 1 if match.group(1) is not None else 3
        value = match.group(group)
        if value:
            if (chunk := builder.add(value, match.start(group), f"{key}: " if key else "")) is not None:
                yield chunk
    if (chunk := builder.flush()) is not None:
        yield chunk


# --- documents, archives, images -----------------------------------------------------------------------------


def _values_chunks(values: Iterator[tuple[str, str]], ner: bool, path: tuple, limits: FileLimits) -> Iterator[Chunk]:
    """Extracted (context, text) pairs that cannot be written back, as chunks; bounded by max_text_chars."""
    builder = _ChunkBuilder(path, ner)
    total = 0
    for context, value in values:
        total += len(value)
        if total > limits.max_text_chars:
            raise FileRejected("file_too_large", messages.file_too_much_text(limits.max_text_chars))
        for start in range(0, len(value), CHUNK_CHARS):
            if (chunk := builder.add(value[start:start + CHUNK_CHARS], -1, f"{context}: " if context else "")) is not None:
                yield chunk
    if (chunk := builder.flush()) is not None:
        yield chunk


def checked_archive(data: bytes, limits: FileLimits) -> zipfile.ZipFile:
    """A ZIP container (zip, docx, xlsx) whose declared sizes are within limits; zip bombs are refused here,
    before anything is decompressed. (zipfile itself stops reading an entry at its declared size.)"""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise FileRejected("file_unreadable", messages.file_corrupt("ZIP")) from None
    if len(infos) > limits.max_zip_entries:
        raise FileRejected("file_archive_refused", messages.zip_too_many_entries(len(infos), limits.max_zip_entries))
    unpacked = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos) or 1
    if unpacked > limits.max_unpacked_bytes:
        raise FileRejected("file_archive_refused", messages.zip_too_big(unpacked, limits.max_unpacked_bytes))
    if unpacked > 1024 * 1024 and unpacked / packed > limits.max_zip_ratio:
        raise FileRejected("file_archive_refused", messages.zip_ratio(unpacked / packed, limits.max_zip_ratio))
    if any(info.flag_bits & 0x1 for info in infos):
        raise FileRejected("file_encrypted", messages.file_encrypted("ZIP"))
    return archive


def pdf_values(data: bytes, limits: FileLimits) -> Iterator[tuple[str, str]]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if b"%%EOF" not in data[-2048:]:
        raise FileRejected("file_unreadable", messages.file_corrupt("PDF"))
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise FileRejected("file_encrypted", messages.file_encrypted("PDF"))
        pages = list(reader.pages)
    except FileRejected:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, OSError):
        raise FileRejected("file_unreadable", messages.file_corrupt("PDF")) from None
    for number, page in enumerate(pages, 1):
        try:
            text = page.extract_text() or ""
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, OSError):
            raise FileRejected("file_unreadable", messages.file_corrupt("PDF")) from None
        yield f"page {number}", text


def docx_values(data: bytes, limits: FileLimits) -> Iterator[tuple[str, str]]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    checked_archive(data, limits)
    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile, OSError):
        raise FileRejected("file_unreadable", messages.file_corrupt("DOCX")) from None
    for paragraph in document.paragraphs:
        if paragraph.text.strip():
            yield "", paragraph.text
    for table in document.tables:
        header: list[str] = []
        for index, row in enumerate(table.rows):
            texts = [c.text for c in row.cells]
            if index == 0 and texts and all(_HEADER.fullmatch(t.strip()) for t in texts):
                header = [t.strip() for t in texts]
                continue
            for column, value in enumerate(texts):
                if value.strip():
                    yield (header[column] if column < len(header) else ""), value


def xlsx_values(data: bytes, limits: FileLimits) -> Iterator[tuple[str, str]]:
    import openpyxl

    checked_archive(data, limits)
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (KeyError, ValueError, TypeError, zipfile.BadZipFile, OSError):
        raise FileRejected("file_unreadable", messages.file_corrupt("XLSX")) from None
    try:
        for sheet in workbook.worksheets:
            header: list[str] = []
            for index, row in enumerate(sheet.iter_rows(values_only=True)):
                texts = ["" if v is None else str(v) for v in row]
                if index == 0 and texts and all(_HEADER.fullmatch(t.strip()) for t in texts if t):
                    header = [t.strip() for t in texts]
                    continue
                for column, value in enumerate(texts):
                    if value.strip():
                        yield (header[column] if column < len(header) and header[column] else ""), value
    finally:
        workbook.close()


def ocr_values(data: bytes, limits: FileLimits) -> Iterator[tuple[str, str]]:
    try:
        done = subprocess.run(["tesseract", "stdin", "stdout"], input=data, capture_output=True,
                              timeout=limits.ocr_timeout_seconds, check=False)
    except (OSError, subprocess.TimeoutExpired):
        raise FileRejected("file_unreadable", messages.file_corrupt("image")) from None
    if done.returncode != 0:
        raise FileRejected("file_unreadable", messages.file_corrupt("image"))
    yield "", done.stdout.decode("utf-8", "replace")


# --- extraction: one entry point ------------------------------------------------------------------------------


@dataclass
class Extracted:
    """A file read for scanning: its type, its chunks (lazy), and for text-like files the decoded text."""

    file_type: str
    chunks: Iterator[Chunk]
    decoded: Decoded | None = None
    scanned: bool = True


def extract(name: str, data: bytes, limits: FileLimits, *, ner: bool = False, max_bytes: int | None = None,
            depth: int = 0) -> Extracted:
    """Read a file into chunks; raises FileRejected (fast, before scanning) when it cannot be read safely."""
    kind = file_type(name, data, limits, max_bytes)
    if kind in REWRITABLE:
        decoded = decode_text(data)
        if len(decoded.text) > limits.max_text_chars:
            raise FileRejected("file_too_large", messages.file_too_much_text(limits.max_text_chars))
        make = {"csv": lambda t: csv_chunks(t, ner, "\t" if extension(name) == "tsv" else None),
                "json": lambda t: json_chunks(t, ner)}.get(kind, lambda t: text_chunks(t, ner))
        return Extracted(kind, make(decoded.text), decoded)
    if kind == "pdf":
        return Extracted(kind, _values_chunks(pdf_values(data, limits), ner, ("pages",), limits))
    if kind == "docx":
        return Extracted(kind, _values_chunks(docx_values(data, limits), ner, ("paragraphs",), limits))
    if kind == "xlsx":
        return Extracted(kind, _values_chunks(xlsx_values(data, limits), ner, ("cells",), limits))
    if kind == "zip":
        if depth > 0:
            raise FileRejected("file_archive_refused", messages.zip_nested())
        return Extracted(kind, _zip_chunks(data, limits, ner))
    if kind == "image" and limits.ocr:
        return Extracted(kind, _values_chunks(ocr_values(data, limits), ner, ("ocr",), limits))
    return Extracted(kind, iter(()), scanned=False)


def _zip_chunks(data: bytes, limits: FileLimits, ner: bool) -> Iterator[Chunk]:
    """Each entry of a ZIP read as the file it is, one level deep (an archive inside is refused)."""
    archive = checked_archive(data, limits)
    for index, info in enumerate(archive.infolist()):
        if info.is_dir() or info.file_size == 0:
            continue
        try:
            inner = archive.read(info)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
            raise FileRejected("file_unreadable", messages.file_corrupt("ZIP")) from None
        entry = extract(info.filename, inner, limits, ner=ner, depth=1)
        for chunk in entry.chunks:
            pieces = [(at, -1, length) for at, _, length in chunk.pieces]  # never written back into the ZIP
            yield Chunk(Segment(("entries", index) + chunk.segment.path, chunk.segment.text, "plain",
                                chunk.segment.scan), pieces)


# --- scanning ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileOutcome:
    """What happens to one file: its verdict and why (shapes only), and the bytes to send when redacted."""

    file_type: str
    size: int
    verdict: str  # allow | warn | redact | block
    entities: dict[str, int] = field(default_factory=dict)  # per entity type, findings the policy acts on
    rule_ids: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    redacted: bytes | None = field(default=None, repr=False)  # verdict redact: the rewritten file
    error: str = ""  # why the file could not be read (file_unreadable, file_archive_refused ...)
    detail: str = ""
    scanned: bool = True
    findings: tuple[dict, ...] = ()  # explain: entity, rule, pattern, score, action, reason, where (no values)
    categories: tuple[str, ...] = ()
    reports: tuple[tuple[str, str, str], ...] = ()  # (rule, entity, keyed fingerprint): for "Not sensitive"

    @property
    def entity_types(self) -> list[str]:
        return sorted(self.entities)

    def summary(self) -> dict:
        return {"verdict": self.verdict, "file_type": self.file_type, "size": self.size,
                "entities": dict(self.entities), "rules": list(self.rule_ids), "reasons": list(self.reasons),
                "error": self.error, "scanned": self.scanned}


def wants_ner(policy) -> bool:
    """NER on files only when the policy does something with names or places."""
    scope = policy.base
    return any(scope.entities.get(e, scope.categories.get(c, policy.default_action)) != "allow"
               for e, c in (("PERSON", "person"), ("LOCATION", "location")))


def scan_file(scanner, name: str, data: bytes, limits: FileLimits, *, channel_id: str | None = None) -> FileOutcome:
    """Read, scan and decide one file in one call (CLI, bench, tests); servers step a `FileScan` instead."""
    scan = FileScan(scanner, name, data, limits, channel_id=channel_id)
    while scan.step():
        pass
    return scan.outcome()


class FileScan:
    """One file's scan, in steps of BATCH chunks, so a server can run each step on the shared scan thread and
    let message scans in between (a 10 MB file is hundreds of steps, never one long block).

    Rejections (FileRejected) surface from `step()` and become the outcome; nothing here does I/O.
    """

    def __init__(self, scanner, name: str, data: bytes, limits: FileLimits, *, channel_id: str | None = None):
        self.scanner, self.name, self.data, self.limits = scanner, name, data, limits
        self.rules: FilePolicy = scanner.policy.files
        self.context = scanner.context(channel_id)
        self.extracted: Extracted | None = None
        self.rejected: FileRejected | None = None
        self.entities: dict[str, int] = {}
        self.rule_ids: set[str] = set()
        self.explained: list[dict] = []
        self.edits: list[tuple[int, int, str]] = []
        self.verdict = "allow"
        self.reasons: dict[str, None] = {}
        self.categories: set[str] = set()
        self.reports: dict[tuple[str, str, str], None] = {}
        self._done = False

    def step(self) -> bool:
        """Extract (first call) or scan the next batch of chunks; False once there is nothing left to do."""
        if self._done:
            return False
        try:
            if self.extracted is None:
                ner = self.scanner.engine.ner_enabled and wants_ner(self.scanner.policy)
                self.extracted = extract(self.name, self.data, self.limits, ner=ner, max_bytes=self.rules.max_bytes)
                return True
            batch = list(itertools.islice(self.extracted.chunks, BATCH))
            if not batch:
                self._done = True
                return False
            self._scan(batch)
            return True
        except FileRejected as exc:
            self.rejected, self._done = exc, True
            return False

    def _scan(self, chunks: list[Chunk]) -> None:
        decoded = self.extracted.decoded
        results = self.scanner.engine.scan_batch([[c.segment] for c in chunks])
        for chunk, result in zip(chunks, results):
            decision = decide(result.findings, self.scanner.policy, self.context)
            for item in decision.actions:
                finding = item.finding
                if len(self.explained) < EXPLAIN_LIMIT:
                    self.explained.append({"entity_type": finding.entity_type, "rule": finding.rule,
                                           "pattern": finding.pattern, "score": round(finding.score, 3),
                                           "path": "/" + "/".join(str(p) for p in finding.path),
                                           "action": item.action, "reason": item.reason})
                if item.action == "allow":
                    continue
                self.entities[finding.entity_type] = self.entities.get(finding.entity_type, 0) + 1
                self.rule_ids.add(finding.rule)
                self.categories.add(finding.category)
                if len(self.reports) < EXPLAIN_LIMIT and finding.value:
                    key = (finding.rule, finding.entity_type, fingerprint(finding.value, self.scanner.fingerprint_key))
                    self.reports[key] = None
                if SEVERITY[item.action] > SEVERITY[self.verdict]:
                    self.verdict = item.action
                    self.reasons.clear()
                if item.action == self.verdict:
                    self.reasons[item.reason] = None
                if item.action in ("redact", "block") and decoded is not None:
                    span = chunk.to_file(finding.start, finding.end)
                    if span is not None:
                        value = decoded.text[span[0]:span[1]]
                        self.edits.append((span[0], span[1],
                                           _replacement(self.scanner, finding, self.rules, decoded, value)))

    def outcome(self) -> FileOutcome:
        """The verdict for the file: findings decided as for messages, then the policy's files.types."""
        size = len(self.data)
        if self.rejected is not None:
            exc = self.rejected
            verdict = self.rules.unreadable if exc.code in UNREADABLE_CODES else "block"
            return FileOutcome("unknown", size, "block" if verdict == "redact" else verdict,
                               reasons=(f"file: {exc.code.removeprefix('file_')}",), error=exc.code,
                               detail=exc.detail, scanned=False)
        extracted = self.extracted
        kind = extracted.file_type
        if not extracted.scanned:
            return FileOutcome(kind, size, self.rules.unscanned, reasons=(f"{kind}: not scanned (no extractor)",),
                               scanned=False)
        action, reasons = self.verdict, dict(self.reasons)
        if action in ("redact", "block"):
            by_type = self.rules.action_for(kind)
            if by_type == "allow":
                action = "allow"
            elif action == "redact":
                action = by_type if (by_type != "redact" or extracted.decoded is not None) else "block"
            if action != self.verdict:
                reasons[f"files.types.{kind}: {by_type}"] = None
        redacted = None
        if action == "redact" and extracted.decoded is not None:
            redacted = extracted.decoded.encode(_apply(extracted.decoded.text, self.edits))
        return FileOutcome(kind, size, action, dict(self.entities), tuple(sorted(self.rule_ids)), tuple(reasons),
                           redacted, findings=tuple(self.explained), categories=tuple(sorted(self.categories)),
                           reports=tuple(self.reports))


def _replacement(scanner, finding, rules: FilePolicy, decoded: Decoded, value: str) -> str:
    """`label`: the redactor's replacement. `mask` (default): the same number of bytes in the file's encoding,
    `[ENTITY]` then `*`s (or the last digits for masked entities like cards), so the announced length holds."""
    if rules.redaction == "label":
        return scanner.redactor.replacement(finding)
    encoding = decoded.encoding
    size = len(value.encode(encoding))
    unit = len("*".encode(encoding))
    config = scanner.policy.redaction_for(finding.entity_type)
    if config.operator == "mask" and len(value) > config.keep_last:
        tail = value[-config.keep_last:] if config.keep_last else ""
        head = "*" * ((size - len(tail.encode(encoding))) // unit)
        candidate = head + tail
    else:
        label = f"[{finding.entity_type}]"
        room = size - len(label.encode(encoding))
        candidate = label + "*" * (room // unit) if room >= 0 else "*" * (size // unit)
    if len(candidate.encode(encoding)) != size:
        candidate = "*" * (size // unit)
    return candidate


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    out, position = [], 0
    for start, end, replacement in sorted(edits):
        if start < position:
            continue
        out.append(text[position:start])
        out.append(replacement)
        position = end
    out.append(text[position:])
    return "".join(out)
