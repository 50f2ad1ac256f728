"""Real files made in the test: PDF (written by hand, read and encrypted with pypdf), DOCX (python-docx),
XLSX (openpyxl), ZIP (zipfile), and CSV of fake customers."""

from __future__ import annotations

import io
import zipfile

from tests.factories import CARD, EMAIL, SSN

CUSTOMERS_HEADER = "name,email,ssn,card,notes\n"
PEM_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9OiZ1BjP5CE/Wm/Rr500PRK+Lh9x5eJPo5CAZ3/ANBE0sTK0ZsDGMak2m1g7GwcHvc\n"
    "U5q3P9iZPTS5ub4mWRK+Lh9x5eJPo5CAZ3/ANBE0sTK0ZsDGMak2m1g7GwcHvcU5q3P9iZPTS5ub4mW3Tz2mr7SZiAMfQyuvBjM9\n"
    "-----END RSA PRIVATE KEY-----\n"
)


def customers_csv(rows: int = 3) -> bytes:
    lines = [CUSTOMERS_HEADER]
    for index in range(rows):
        lines.append(f"Customer {index},{EMAIL},{SSN},{CARD},\"called, said \"\"hi\"\"\"\n")
    return "".join(lines).encode()


def pdf_with_text(*lines: str) -> bytes:
    """A one-page PDF whose text is `lines` (Helvetica), with a correct xref table."""
    text_ops = " ".join(f"({line}) Tj 0 -16 Td" for line in lines)
    content = f"BT /F1 12 Tf 72 720 Td {text_ops} ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def encrypted_pdf(*lines: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_with_text(*lines))))
    writer.encrypt(user_password="secret-pass", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_with(paragraph: str, table: list[list[str]]) -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph(paragraph)
    grid = document.add_table(rows=len(table), cols=len(table[0]))
    for r, row in enumerate(table):
        for c, value in enumerate(row):
            grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def xlsx_with(rows: list[list[object]]) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def zip_with(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()
