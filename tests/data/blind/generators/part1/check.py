#!/usr/bin/env python3
"""Verify /work/blind/part1/messages.jsonl against the structural rules of LABELLING.md."""
import collections
import json
import os
import re
import sys

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "messages.jsonl")
LABELS = {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS", "PERSON",
          "LOCATION", "US_BANK_NUMBER", "US_PASSPORT", "US_DRIVER_LICENSE", "DATE_OF_BIRTH", "SECRET"}


def luhn_ok(num):
    digits = [int(c) for c in num if c.isdigit()]
    s = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        s += d
    return s % 10 == 0


def iban_ok(iban):
    s = iban.replace(" ", "")
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{8,30}", s):
        return False
    s = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in s)) % 97 == 1


def ssn_ok(v):
    if not re.fullmatch(r"\d{3}([- ]?)\d{2}\1\d{4}", v):
        return False
    d = re.sub(r"\D", "", v)
    a, g, n = d[:3], d[3:5], d[5:]
    return a not in ("000", "666") and a[0] != "9" and g != "00" and n != "0000"


def aba_ok(r):
    w = [3, 7, 1, 3, 7, 1, 3, 7, 1]
    return sum(int(x) * y for x, y in zip(r, w)) % 10 == 0


def main():
    errors = []
    lines = open(PATH, encoding="utf-8").read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != 500:
        errors.append(f"expected 500 lines, got {len(lines)}")
    ids = set()
    counts = collections.Counter()
    clean = 0
    for ln, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
        except Exception as e:  # noqa: BLE001
            errors.append(f"line {ln}: bad json {e}")
            continue
        if set(obj) != {"id", "text", "spans"}:
            errors.append(f"line {ln}: keys {sorted(obj)}")
        mid, text, spans = obj.get("id"), obj.get("text"), obj.get("spans")
        if not isinstance(mid, str) or not re.fullmatch(r"p1-\d{5}", mid):
            errors.append(f"line {ln}: bad id {mid!r}")
        if mid in ids:
            errors.append(f"line {ln}: duplicate id {mid}")
        ids.add(mid)
        if not isinstance(text, str) or not text.strip():
            errors.append(f"{mid}: empty text")
            continue
        if not spans:
            clean += 1
        prev_end = -1
        for sp in sorted(spans, key=lambda s: s["start"]):
            s, e, lab = sp.get("start"), sp.get("end"), sp.get("label")
            if set(sp) != {"start", "end", "label"}:
                errors.append(f"{mid}: span keys {sorted(sp)}")
            if lab not in LABELS:
                errors.append(f"{mid}: bad label {lab}")
            if not (isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(text)):
                errors.append(f"{mid}: span out of bounds {sp}")
                continue
            if s < prev_end:
                errors.append(f"{mid}: overlapping span {sp}")
            prev_end = e
            v = text[s:e]
            if v != v.strip():
                errors.append(f"{mid}: span has surrounding whitespace {v!r}")
            counts[lab] += 1
            if lab == "CREDIT_CARD":
                d = re.sub(r"[ -]", "", v)
                if not (d.isdigit() and 12 <= len(d) <= 19 and luhn_ok(d)):
                    errors.append(f"{mid}: credit card not Luhn-valid {v!r}")
            elif lab == "IBAN_CODE":
                if not iban_ok(v):
                    errors.append(f"{mid}: IBAN not mod-97 valid {v!r}")
            elif lab == "US_SSN":
                if not ssn_ok(v):
                    errors.append(f"{mid}: SSN out of valid range {v!r}")
            elif lab == "IP_ADDRESS":
                if v.startswith("127.") or v in ("::1", "::", "0.0.0.0") or v.startswith("255."):
                    errors.append(f"{mid}: non-countable IP labelled {v!r}")
            elif lab == "US_BANK_NUMBER":
                if not v.isdigit():
                    errors.append(f"{mid}: bank number not digits {v!r}")
            elif lab == "EMAIL_ADDRESS":
                if "@" not in v and "%40" not in v:
                    errors.append(f"{mid}: email without @ {v!r}")
    for mid_err in errors[:50]:
        print("ERROR", mid_err)
    print(f"lines={len(lines)} clean={clean} labelled_msgs={len(lines) - clean}")
    for lab in sorted(LABELS):
        print(f"  {lab:18s} {counts[lab]}")
    print(f"  total spans        {sum(counts.values())}")
    if errors:
        print(f"FAILED: {len(errors)} errors")
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
