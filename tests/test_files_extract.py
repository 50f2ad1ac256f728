"""File extraction and scanning: every format made for real in the test, and hostile files refused fast."""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import replace

import pytest

from slack_pii.detect.files import FileLimits, FileRejected, extract, file_type, ocr_available, scan_file
from slack_pii.detect.files_policy import FilePolicy, parse_file_policy
from slack_pii.detect.policy import ACTIONS
from tests.factories import CARD, EMAIL, SSN
from tests.file_factories import (PEM_KEY, customers_csv, docx_with, encrypted_pdf, pdf_with_text, xlsx_with,
                                  zip_with)

LIMITS = FileLimits(ocr=False)


def with_files(scanner, **changes):
    """The session scanner with a different `files:` policy (the scanner itself is shared, so copy it)."""
    policy = replace(scanner.policy, files=replace(scanner.policy.files, **changes))
    return replace(scanner, policy=policy)


# --- text-like files: found, and redacted in place -----------------------------------------------------------


def test_csv_cells_are_scanned_with_their_header_and_redacted_keeping_the_byte_length(scanner):
    data = customers_csv(3)
    outcome = scan_file(scanner, "customers.csv", data, LIMITS)
    assert outcome.verdict == "redact" and outcome.file_type == "csv"
    assert outcome.entities["US_SSN"] == 3 and outcome.entities["CREDIT_CARD"] == 3
    assert len(outcome.redacted) == len(data)
    text = outcome.redacted.decode()
    assert SSN not in text and CARD not in text
    assert text.splitlines()[0] == "name,email,ssn,card,notes"
    assert text.splitlines()[1].split(",")[2] == "[US_SSN]***"
    assert text.splitlines()[1].split(",")[3].endswith("1111")  # cards keep their last four, as in messages
    assert '"called, said ""hi"""' in text  # quoting untouched


def test_a_bare_number_counts_as_an_ssn_only_under_an_ssn_column(scanner):
    # 9 digits with no dashes are weak alone; the column header is the context that makes them an SSN.
    under_header = scan_file(scanner, "export.csv", b"id,ssn\n1,078051123\n", LIMITS)
    no_header = scan_file(scanner, "export.csv", b"id,code\n1,078051123\n", LIMITS)
    assert under_header.entities.get("US_SSN") == 1
    assert "US_SSN" not in no_header.entities


def test_csv_with_crlf_and_a_quoted_cell_spanning_lines_maps_offsets_exactly(scanner):
    data = f'name,notes,ssn\r\nJane,"called twice\nssn {SSN}, card {CARD}",{SSN}\r\nBob,ok,\r\n'.encode()
    outcome = scan_file(scanner, "crm.csv", data, LIMITS)
    assert outcome.entities == {"US_SSN": 2, "CREDIT_CARD": 1}
    assert outcome.redacted == data.replace(SSN.encode(), b"[US_SSN]***").replace(
        CARD.encode(), b"*" * (len(CARD) - 4) + b"1111")


def test_tsv_uses_tabs_and_maps_offsets_back(scanner):
    data = f"name\tssn\nJane\t{SSN}\n".encode()
    outcome = scan_file(scanner, "people.tsv", data, LIMITS)
    assert outcome.redacted == b"name\tssn\nJane\t[US_SSN]***\n"


def test_json_leaves_are_walked_with_their_key_as_context(scanner):
    data = ('{"customers": [{"ssn": "%s", "note": "pay with %s"}], "count": 1}' % (SSN, CARD)).encode()
    outcome = scan_file(scanner, "dump.json", data, LIMITS)
    assert outcome.file_type == "json" and outcome.verdict == "redact"
    assert len(outcome.redacted) == len(data)
    assert SSN.encode() not in outcome.redacted and CARD.encode() not in outcome.redacted
    assert b'"count": 1' in outcome.redacted


def test_yaml_and_source_code_are_text(scanner):
    assert scan_file(scanner, "values.yaml", f"db:\n  ssn: {SSN}\n".encode(), LIMITS).verdict == "redact"
    outcome = scan_file(scanner, "deploy.py", b'KEY = "AKIALALEMEL33243OLIB"\n', LIMITS)
    assert outcome.verdict == "block" and "AWS_ACCESS_KEY_ID" in outcome.entities


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1", "utf-8-sig"])
def test_other_encodings_are_detected_and_written_back_in_the_same_encoding(scanner, encoding):
    text = f"Kundenliste für Müller: ssn {SSN}, Straße\n" * 20
    data = text.encode(encoding)
    outcome = scan_file(scanner, "liste.txt", data, LIMITS)
    assert outcome.verdict == "redact"
    assert len(outcome.redacted) == len(data)
    bare = {"utf-16": "utf-16-le", "utf-8-sig": "utf-8"}.get(encoding, encoding)  # fragments carry no BOM
    assert outcome.redacted.startswith(data[:2])
    assert SSN.encode(bare) not in outcome.redacted
    assert "Müller".encode(bare) in outcome.redacted and "[US_SSN]".encode(bare) in outcome.redacted


def test_a_clean_file_is_allowed_and_not_rewritten(scanner):
    outcome = scan_file(scanner, "notes.md", b"# Release notes\n\nVersion 1.2.3 fixes the login page.\n", LIMITS)
    assert outcome.verdict == "allow" and outcome.redacted is None and outcome.entities == {}


def test_label_redaction_writes_labels_and_changes_the_length(scanner):
    outcome = scan_file(with_files(scanner, redaction="label"), "a.txt", f"ssn {SSN}\n".encode(), LIMITS)
    assert outcome.redacted == b"ssn [US_SSN]\n"


# --- documents and archives: read, never rewritten ------------------------------------------------------------


def test_pdf_text_is_scanned_and_blocked_by_default(scanner):
    outcome = scan_file(scanner, "statement.pdf", pdf_with_text("Customer statement", f"SSN {SSN}"), LIMITS)
    assert outcome.file_type == "pdf" and outcome.entities == {"US_SSN": 1}
    assert outcome.verdict == "block" and outcome.redacted is None
    assert "files.types.pdf: block" in outcome.reasons


def test_docx_paragraphs_and_table_cells_with_headers(scanner):
    data = docx_with("Refund for the customer below.", [["name", "ssn"], ["Jane", "078051123"]])
    outcome = scan_file(scanner, "refund.docx", data, LIMITS)
    assert outcome.file_type == "docx" and outcome.entities.get("US_SSN") == 1


def test_xlsx_cells_in_read_only_mode_with_headers(scanner):
    data = xlsx_with([["name", "email", "card"], ["Jane", EMAIL, CARD], ["Bob", "n/a", 42]])
    outcome = scan_file(scanner, "sheet.xlsx", data, LIMITS)
    assert outcome.file_type == "xlsx"
    assert outcome.entities.get("CREDIT_CARD") == 1 and outcome.entities.get("EMAIL_ADDRESS") == 1


def test_zip_entries_are_read_one_level_deep(scanner):
    data = zip_with({"readme.txt": b"nothing here", "export/customers.csv": customers_csv(2),
                     "keys/id_rsa": PEM_KEY.encode()})
    outcome = scan_file(scanner, "bundle.zip", data, LIMITS)
    assert outcome.file_type == "zip" and outcome.verdict == "block"
    assert outcome.entities.get("US_SSN") == 2 and outcome.entities.get("PRIVATE_KEY") == 1


def test_a_type_the_policy_allows_is_sent_as_it_is(scanner):
    allowed = with_files(scanner, types={**scanner.policy.files.types, "pdf": "warn"})
    outcome = scan_file(allowed, "statement.pdf", pdf_with_text(f"SSN {SSN}"), LIMITS)
    assert outcome.verdict == "warn" and outcome.entities == {"US_SSN": 1}


def test_images_without_ocr_are_unscanned_and_follow_the_policy(scanner):
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(200)
    assert scan_file(scanner, "shot.png", png, LIMITS).verdict == "allow"
    outcome = scan_file(with_files(scanner, unscanned="block"), "shot.png", png, LIMITS)
    assert outcome.verdict == "block" and not outcome.scanned


@pytest.mark.skipif(not ocr_available(), reason="tesseract is not installed (Debian: apt-get install tesseract-ocr)")
def test_images_are_read_with_ocr_when_tesseract_is_installed(scanner):
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1200, 200), 255)  # large, plain type: what tesseract reads reliably
    ImageDraw.Draw(image).text((40, 60), f"Customer SSN: {SSN}", fill=0, font=ImageFont.load_default(size=48))
    out = io.BytesIO()
    image.save(out, "PNG")
    outcome = scan_file(scanner, "form.png", out.getvalue(), replace(LIMITS, ocr=True))
    assert outcome.file_type == "image" and outcome.scanned
    assert outcome.entities == {"US_SSN": 1} and outcome.verdict == "block"


# --- hostile inputs: refused fast with a clear reason ------------------------------------------------------------


def refused(name: str, data: bytes, limits: FileLimits = LIMITS) -> FileRejected:
    with pytest.raises(FileRejected) as raised:
        extracted = extract(name, data, limits)
        list(extracted.chunks)
    return raised.value


def test_zip_bomb_is_refused_before_decompressing():
    bomb = zip_with({"zeros.bin": b"\0" * (20 * 1024 * 1024)})
    assert len(bomb) < 100_000
    error = refused("bomb.zip", bomb)
    assert error.code == "file_archive_refused" and "zip bomb" in error.detail


def test_archive_limits_entries_and_unpacked_size():
    many = zip_with({f"f{i}.txt": b"x" for i in range(30)})
    assert refused("many.zip", many, replace(LIMITS, max_zip_entries=10)).code == "file_archive_refused"
    big = zip_with({"a.txt": os.urandom(4096).hex().encode()}, zipfile.ZIP_STORED)
    error = refused("big.zip", big, replace(LIMITS, max_unpacked_bytes=1000))
    assert error.code == "file_archive_refused" and "SLACK_PII_FILE_MAX_UNPACKED_BYTES" in error.detail


def test_nested_archive_is_refused():
    inner = zip_with({"a.txt": b"hello"})
    assert refused("outer.zip", zip_with({"inner.zip": inner})).code == "file_archive_refused"


def test_truncated_pdf_is_refused():
    data = pdf_with_text(f"SSN {SSN}")
    error = refused("cut.pdf", data[: len(data) // 2])
    assert error.code == "file_unreadable" and "PDF" in error.detail


def test_encrypted_pdf_is_refused_and_the_policy_decides(scanner):
    data = encrypted_pdf(f"SSN {SSN}")
    assert refused("locked.pdf", data).code == "file_encrypted"
    assert scan_file(scanner, "locked.pdf", data, LIMITS).verdict == "block"
    assert scan_file(with_files(scanner, unreadable="allow"), "locked.pdf", data, LIMITS).verdict == "allow"


@pytest.mark.parametrize("name, data", [
    ("report.pdf", b"name,ssn\nJane,078-05-1123\n"),          # says PDF, is text
    ("notes.txt", pdf_with_text("hidden")),                  # says text, is a PDF
    ("sheet.xlsx", b"not a zip at all"),
    ("photo.jpg", b"%PDF-1.4 pretending"),
])
def test_a_name_that_lies_about_the_content_is_refused(name, data):
    error = refused(name, data)
    assert error.code == "file_type_mismatch" and name.rsplit(".", 1)[1] in error.detail


def test_binary_garbage_named_as_text_is_refused():
    error = refused("data.csv", os.urandom(4096))
    assert error.code == "file_unreadable" and "binary" in error.detail


def test_empty_and_oversize_files_are_refused(scanner):
    assert refused("empty.txt", b"").code == "file_empty"
    error = refused("big.txt", b"a" * 2000, replace(LIMITS, max_bytes=1000))
    assert error.code == "file_too_large" and "2000" in error.detail and "SLACK_PII_FILE_MAX_BYTES" in error.detail
    # the policy's own max_bytes applies too, and a refusal never quotes the content
    outcome = scan_file(with_files(scanner, max_bytes=10), "a.txt", f"ssn {SSN}".encode(), LIMITS)
    assert outcome.verdict == "block" and outcome.error == "file_too_large" and SSN not in outcome.detail


def test_unknown_binary_is_unscanned_not_refused():
    assert file_type("movie.mp4", os.urandom(2048), LIMITS) == "unknown"
    assert file_type("README", b"plain words\n", LIMITS) == "text"


# --- the files: policy section -------------------------------------------------------------------------------


def test_files_policy_problems_name_the_key_and_the_fix():
    problems = []
    policy = parse_file_policy({"types": {"pdf": "redact", "exe": "block", "csv": "shred"}, "max_bytes": -1,
                                "redaction": "blur", "unscanned": "redact"}, "policy.yaml", problems, ACTIONS)
    text = "\n".join(str(p) for p in problems)
    assert "files.types.pdf: pdf files cannot be rewritten (fix: use block, warn or allow)" in text
    assert "unknown file type 'exe'" in text and "files.types.csv: unknown action 'shred'" in text
    assert "files.max_bytes" in text and "files.redaction" in text
    assert "files.unscanned: redact is not possible here" in text
    assert policy.types["pdf"] == "block" and policy.unscanned == "block"
    assert parse_file_policy(None, "p", [], ACTIONS) == FilePolicy()


def test_long_text_is_cut_at_line_ends_and_every_value_is_found(scanner):
    lines = [f"line {n}: nothing to see here, just a long enough log line for chunking\n" for n in range(400)]
    lines[0] = f"first ssn {SSN}\n"
    lines[-1] = f"last ssn {SSN}\n"
    lines[200] = f"middle ssn {SSN}\n"
    data = "".join(lines).encode()
    assert len(data) > 3 * 4000  # several chunks
    outcome = scan_file(scanner, "big.log", data, LIMITS)
    assert outcome.entities == {"US_SSN": 3} and outcome.redacted.count(b"[US_SSN]***") == 3
    assert len(outcome.redacted) == len(data)
