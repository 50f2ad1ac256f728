#!/usr/bin/env python3
"""Validate /work/blind/part3/messages.jsonl against the structural rules of LABELLING.md.

Hard errors (exit 1): line count, ids, JSON shape, span bounds/overlap/labels, whitespace at span
edges, Luhn for CREDIT_CARD, mod-97 for IBAN_CODE, SSN ranges, ABA checksum for 9-digit bank numbers
that are given as routing numbers is only reported as info.
Warnings (printed, exit 0): unlabelled text that *looks* like a labelled type (e-mail, Luhn-valid card,
valid dashed SSN, non-loopback IPv4) so a human can confirm it is a deliberate hard negative.
"""
import collections
import json
import re
import sys

PATH = sys.argv[1] if len(sys.argv) > 1 else "/work/blind/part3/messages.jsonl"
EXPECTED_LINES = 520
LABELS = {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS", "PERSON", "LOCATION",
          "US_BANK_NUMBER", "US_PASSPORT", "US_DRIVER_LICENSE", "DATE_OF_BIRTH", "SECRET"}


def luhn_ok(num):
    ds = [int(c) for c in num if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(ds)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(s):
    s = re.sub(r"\s", "", s)
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{8,30}", s):
        return False
    rearr = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearr)) % 97 == 1


def ssn_ok(s):
    d = re.sub(r"[\s\-\u00a0]", "", s)
    if not re.fullmatch(r"\d{9}", d):
        return False
    area, group, serial = int(d[:3]), int(d[3:5]), int(d[5:])
    return 0 < area < 900 and area != 666 and group != 0 and serial != 0


def main():
    errors, warnings = [], []
    counts = collections.Counter()
    clean = 0
    ids = set()
    with open(PATH, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != EXPECTED_LINES:
        errors.append(f"expected {EXPECTED_LINES} lines, got {len(lines)}")
    for ln, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"line {ln}: bad JSON {e}")
            continue
        if set(obj) != {"id", "text", "spans"}:
            errors.append(f"line {ln}: keys {sorted(obj)}")
        mid, text, spans = obj.get("id"), obj.get("text"), obj.get("spans")
        if not isinstance(mid, str) or not re.fullmatch(r"p3-\d{5}", mid):
            errors.append(f"line {ln}: bad id {mid!r}")
        if mid in ids:
            errors.append(f"line {ln}: duplicate id {mid}")
        ids.add(mid)
        if not isinstance(text, str) or not text:
            errors.append(f"{mid}: empty text")
            continue
        if not isinstance(spans, list):
            errors.append(f"{mid}: spans not a list")
            continue
        if not spans:
            clean += 1
        prev_end = -1
        for sp in sorted(spans, key=lambda s: (s.get("start", -1), s.get("end", -1))):
            if set(sp) != {"start", "end", "label"}:
                errors.append(f"{mid}: span keys {sorted(sp)}")
                continue
            s, e, lab = sp["start"], sp["end"], sp["label"]
            if not (isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(text)):
                errors.append(f"{mid}: span out of bounds {sp}")
                continue
            if lab not in LABELS:
                errors.append(f"{mid}: bad label {lab}")
            if s < prev_end:
                errors.append(f"{mid}: overlapping span {sp}")
            prev_end = max(prev_end, e)
            val = text[s:e]
            if val != val.strip() or not val.strip():
                errors.append(f"{mid}: span has edge whitespace / empty {val!r}")
            counts[lab] += 1
            if lab == "CREDIT_CARD":
                dg = re.sub(r"[ \-]", "", val)
                if not (dg.isdigit() and 12 <= len(dg) <= 19 and luhn_ok(dg)):
                    errors.append(f"{mid}: CREDIT_CARD not Luhn-valid {val!r}")
            elif lab == "IBAN_CODE":
                if not iban_ok(val):
                    errors.append(f"{mid}: IBAN_CODE not mod-97 valid {val!r}")
            elif lab == "US_SSN":
                if not ssn_ok(val):
                    errors.append(f"{mid}: US_SSN out of valid ranges {val!r}")
            elif lab == "EMAIL_ADDRESS":
                if not re.fullmatch(r"[^\s@%]+(@|%40)[A-Za-z0-9.-]+\.[A-Za-z]{2,}", val):
                    errors.append(f"{mid}: EMAIL_ADDRESS looks wrong {val!r}")
            elif lab == "IP_ADDRESS":
                if val.startswith("127.") or val in ("0.0.0.0", "::", "::1") or val.startswith("255."):
                    errors.append(f"{mid}: IP_ADDRESS is loopback/unspecified/netmask {val!r}")
            elif lab == "US_PASSPORT":
                if not re.fullmatch(r"\d{9}|[A-Z]\d{8}", val):
                    errors.append(f"{mid}: US_PASSPORT format {val!r}")
        # ---- lint: unlabelled look-alikes -------------------------------------------------------
        covered = [False] * len(text)
        for sp in spans:
            for i in range(sp["start"], min(sp["end"], len(text))):
                covered[i] = True

        def unl(m):
            return not any(covered[m.start():m.end()])

        for m in re.finditer(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", text):
            if unl(m) and not text[m.end():m.end() + 1] == ":":
                warnings.append(f"{mid}: unlabelled e-mail-like {m.group()!r}")
        for m in re.finditer(r"(?<![\w.])\d(?:[ \-]?\d){12,18}(?![\w.])", text):
            if unl(m) and luhn_ok(m.group()):
                warnings.append(f"{mid}: unlabelled Luhn-valid number {m.group()!r}")
        for m in re.finditer(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])", text):
            if unl(m) and ssn_ok(m.group()):
                warnings.append(f"{mid}: unlabelled SSN-shaped {m.group()!r}")
        for m in re.finditer(r"(?<![\d.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\d.])", text):
            o = [int(x) for x in m.groups()]
            if unl(m) and all(x < 256 for x in o) and o[0] not in (0, 127, 255):
                warnings.append(f"{mid}: unlabelled IPv4-shaped {m.group()!r}")
        for m in re.finditer(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,4})?\b", text):
            if unl(m) and iban_ok(m.group()):
                warnings.append(f"{mid}: unlabelled IBAN {m.group()!r}")
    for w in warnings:
        print("WARN", w)
    for e in errors:
        print("ERROR", e)
    print(f"lines={len(lines)} clean={clean} labelled={len(lines) - clean} spans={sum(counts.values())}")
    for lab in sorted(LABELS):
        print(f"  {lab:18s} {counts[lab]}")
    if errors:
        print(f"FAILED: {len(errors)} errors")
        sys.exit(1)
    print(f"OK ({len(warnings)} warnings to eyeball)")


if __name__ == "__main__":
    main()
