#!/usr/bin/env python3
"""Validate messages.jsonl against the structural rules of LABELLING.md."""
import collections
import json
import re
import sys

LABELS = {'EMAIL_ADDRESS', 'PHONE_NUMBER', 'CREDIT_CARD', 'US_SSN', 'IBAN_CODE', 'IP_ADDRESS', 'PERSON', 'LOCATION',
          'US_BANK_NUMBER', 'US_PASSPORT', 'US_DRIVER_LICENSE', 'DATE_OF_BIRTH', 'SECRET'}


def luhn_ok(num):
    d = [int(c) for c in num if c.isdigit()]
    s = 0
    for i, x in enumerate(reversed(d)):
        if i % 2 == 1:
            x *= 2
            if x > 9:
                x -= 9
        s += x
    return s % 10 == 0


def iban_ok(s):
    s = s.replace(' ', '')
    if not re.fullmatch(r'[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}', s):
        return False
    r = s[4:] + s[:4]
    return int(''.join(str(int(c, 36)) for c in r)) % 97 == 1


def ssn_ok(s):
    digits = re.sub(r'[ -]', '', s)
    if not re.fullmatch(r'\d{9}', digits):
        return False
    a, g, n = int(digits[:3]), int(digits[3:5]), int(digits[5:])
    return a != 0 and a != 666 and a < 900 and g != 0 and n != 0


def main(path='messages.jsonl'):
    errs = []
    ids = set()
    counts = collections.Counter()
    clean = 0
    n = 0
    with open(path, encoding='utf-8') as fh:
        for ln, line in enumerate(fh, 1):
            n += 1
            try:
                r = json.loads(line)
            except Exception as e:
                errs.append(f'line {ln}: bad json {e}')
                continue
            if set(r) != {'id', 'text', 'spans'}:
                errs.append(f'line {ln}: keys {sorted(r)}')
            rid, text, spans = r.get('id'), r.get('text'), r.get('spans')
            if not isinstance(rid, str) or not re.fullmatch(r'p2-\d{5}', rid):
                errs.append(f'line {ln}: bad id {rid!r}')
            if rid in ids:
                errs.append(f'line {ln}: duplicate id {rid}')
            ids.add(rid)
            if not isinstance(text, str) or not text.strip():
                errs.append(f'{rid}: empty text')
                continue
            if not spans:
                clean += 1
            last_end = -1
            for s in sorted(spans, key=lambda s: (s['start'], s['end'])):
                st, en, lab = s.get('start'), s.get('end'), s.get('label')
                if set(s) != {'start', 'end', 'label'}:
                    errs.append(f'{rid}: span keys {sorted(s)}')
                if lab not in LABELS:
                    errs.append(f'{rid}: bad label {lab}')
                if not (isinstance(st, int) and isinstance(en, int) and 0 <= st < en <= len(text)):
                    errs.append(f'{rid}: span out of bounds {s}')
                    continue
                if st < last_end:
                    errs.append(f'{rid}: overlapping span {s}')
                last_end = max(last_end, en)
                val = text[st:en]
                if val != val.strip():
                    errs.append(f'{rid}: span has surrounding whitespace {val!r}')
                counts[lab] += 1
                if lab == 'CREDIT_CARD':
                    digits = re.sub(r'[ -]', '', val)
                    if not (digits.isdigit() and 12 <= len(digits) <= 19 and luhn_ok(digits)):
                        errs.append(f'{rid}: card not Luhn-valid {val!r}')
                if lab == 'IBAN_CODE' and not iban_ok(val):
                    errs.append(f'{rid}: IBAN not mod-97 valid {val!r}')
                if lab == 'US_SSN' and not ssn_ok(val):
                    errs.append(f'{rid}: SSN out of range {val!r}')
            if spans != sorted(spans, key=lambda s: s['start']):
                errs.append(f'{rid}: spans not sorted by start')
    if n != 500:
        errs.append(f'expected 500 lines, got {n}')
    for e in errs[:50]:
        print('ERROR', e)
    print(f'lines={n} clean={clean} with_spans={n - clean}')
    for k in sorted(LABELS):
        print(f'  {k:<18} {counts[k]}')
    print(f'  total spans        {sum(counts.values())}')
    if errs:
        print(f'FAIL ({len(errs)} errors)')
        sys.exit(1)
    print('OK')


if __name__ == '__main__':
    main(*sys.argv[1:])
