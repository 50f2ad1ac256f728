"""Named checks that YAML rules refer to by `validator:`.

Each takes the matched value and answers like Presidio's `validate_result`: True means certain (score 1.0),
False means drop, None means "cannot tell" (keep the pattern's score). A validator never finds new candidates.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
import string
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Optional
from datetime import date

import tldextract
from stdnum import luhn as _luhn
from stdnum.iso7064 import mod_97_10
from stdnum.us import rtn as _rtn
from stdnum.us import ssn as _ssn

Validator = Callable[[str], Optional[bool]]
VALIDATORS: dict[str, Validator] = {}

# NOTE: tldextract's default extractor downloads the public suffix list on first use. This one is pinned to
# the snapshot bundled inside the package: no network, ever (suffix_list_urls=() and no cache dir).
OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def validator(func: Validator) -> Validator:
    VALIDATORS[func.__name__] = func
    return func


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def shannon_entropy(value: str) -> float:
    """Bits per character; used by `min_entropy` in rules."""
    if not value:
        return 0.0
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


@validator
def luhn(value: str) -> bool:
    digits = _digits(value)
    if not 12 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    return _luhn.is_valid(digits)


@validator
def ssn_structure(value: str) -> bool | None:
    """Structurally valid US SSN: no 000/666/9xx area, no 00 group, no 0000 serial, not a known fake."""
    digits = _digits(value)
    if len(digits) != 9 or len(set(digits)) == 1:
        return False
    # Mixed separators (123-45 6789) are typos or other numbers.
    separators = {ch for ch in value if not ch.isdigit()}
    if len(separators) > 1:
        return False
    # python-stdnum: no 000/666/9xx area, no 00 group, no 0000 serial, and the SSA's published advertising numbers
    if not _ssn.is_valid(digits):
        return False
    # Structure passing proves nothing (any 9 digits can look like an SSN): keep the pattern's score.
    return None if digits not in {"123456789", "078051120", "219099999", "457555462"} else False


@validator
def iban_mod97(value: str) -> bool:
    compact = re.sub(r"[\s-]", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    if IBAN_LENGTHS.get(compact[:2], len(compact)) != len(compact):
        return False
    # NOTE: the ISO 7064 mod 97-10 check only, not stdnum.iban's per-country BBAN formats: an IBAN typed with a
    # valid checksum is an account number even where our country table is older than the bank's format.
    return mod_97_10.is_valid(compact[4:] + compact[:4])


@validator
def aba_checksum(value: str) -> bool:
    digits = _digits(value)
    if len(digits) != 9 or len(set(digits)) == 1:
        return False
    if not (0 <= int(digits[:2]) <= 12 or 21 <= int(digits[:2]) <= 32 or 61 <= int(digits[:2]) <= 72 or digits[:2] == "80"):
        return False
    return _rtn.is_valid(digits)


_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


@validator
def github_classic_checksum(value: str) -> bool | None:
    """ghp_/gho_/ghu_/ghs_/ghr_ tokens end in a base62 CRC32 of the 30-character body.

    A verified checksum makes the finding certain; a failed one keeps the pattern's (lower) score, since
    hand-typed or truncated tokens still deserve a warning.
    """
    body, check = value[4:-6], value[-6:]
    if len(value) != 40:
        return None
    crc = zlib.crc32(body.encode())
    encoded = ""
    while crc:
        crc, rest = divmod(crc, 62)
        encoded = _BASE62[rest] + encoded
    return True if encoded.rjust(6, "0") == check else None


def _b64json(segment: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


@validator
def jwt_structure(value: str) -> bool:
    """Two or three dot-separated parts whose header decodes to a JSON object naming `alg` or `typ`.

    Two parts: a token pasted without its signature still carries the claims (detect-secrets flags it too).
    """
    parts = value.split(".")
    if len(parts) not in (2, 3):
        return False
    header = _b64json(parts[0])
    return bool(header) and header.lstrip().startswith(b"{") and (b'"alg"' in header or b'"typ"' in header)


@validator
def email_domain(value: str) -> bool:
    """The domain ends in a real public suffix (bundled snapshot, offline)."""
    domain = value.replace("%40", "@").rsplit("@", 1)[-1].rstrip(".")
    return bool(OFFLINE_TLD(domain).suffix) and "." in domain


@validator
def ip_address(value: str) -> bool | None:
    """An IPv4/IPv6 address, optionally with a CIDR prefix, an IPv6 zone (%eth0) or an IPv4 :port."""
    text = value.strip("[]")
    if text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    if text.startswith("::1:") or text.startswith("::1/"):  # loopback with a port (`::1:5432`) or a prefix
        return False
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError:
        return False
    address = interface.ip
    if address.is_unspecified or address.is_loopback or is_netmask(str(address)):
        return False
    return None


def is_netmask(value: str) -> bool:
    """255.255.240.0 (ones then zeros) or a wildcard mask 0.0.0.255 (zeros then ones); not 0.0.0.0."""
    try:
        number = int(ipaddress.IPv4Address(value))
    except ValueError:
        return False
    bits = f"{number:032b}"
    return number not in (0,) and bits.startswith("1") and "01" not in bits or bits.startswith("0") and "10" not in bits and number != 0


# Month names (first three or four letters) in the languages people write dates of birth in here.
MONTHS = {m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                          "dec"])}
MONTHS.update({"ene": 1, "gen": 1, "jän": 1, "janv": 1, "fév": 2, "fev": 2, "févr": 2, "mär": 3, "mars": 3, "mrt": 3,
               "abr": 4, "avr": 4, "apr": 4, "mai": 5, "mag": 5, "mayo": 5, "mei": 5, "juin": 6, "giu": 6, "jun": 6,
               "juil": 7, "lug": 7, "jul": 7, "ago": 8, "août": 8, "aoû": 8, "set": 9, "sept": 9, "okt": 10,
               "out": 10, "ott": 10, "dez": 12, "dic": 12, "déc": 12, "dec": 12, "ener": 1, "febr": 2, "marz": 3,
               "marc": 3, "maggio": 5})
_MONTH_NAME = re.compile(r"(?i)\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|ene|gen|jän|janv|fév|fev|févr|mär|mars|"
                         r"mrt|abr|avr|mai|mag|mei|juin|giu|juil|lug|ago|août|aoû|set|okt|out|ott|dez|dic|déc)[^\W\d_]*")


@validator
def plausible_date(value: str) -> bool | None:
    """A calendar date in the past 120 years (dates of birth)."""
    numbers = [int(n) for n in re.findall(r"\d+", value)]
    months = MONTHS
    month_name = _MONTH_NAME.search(value)
    today = date.today()
    candidates: list[tuple[int, int, int]] = []
    if month_name and len(numbers) == 2:
        day, year = (numbers[0], numbers[1]) if numbers[1] > 31 else (numbers[1], numbers[0])
        candidates.append((year, months[month_name.group(1).lower()], day))
    elif len(numbers) == 3:
        a, b, c = numbers
        if a > 31:  # ISO 1990-04-23
            candidates.append((a, b, c))
        else:
            year = c + (1900 if 30 <= c < 100 else 2000 if c < 30 else 0)
            candidates += [(year, a, b), (year, b, a)]  # US and European order
    for year, month, day in candidates:
        try:
            when = date(year, month, day)
        except ValueError:
            continue
        if today.year - 120 <= when.year and when <= today:
            return None
    return False


# Lengths from the SWIFT IBAN registry (the checksum alone accepts 1 in 97 random strings).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


@validator
def basic_credentials(value: str) -> bool:
    """HTTP Basic: base64 of `user:password` with a non-empty password, all printable."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    user, colon, password = decoded.partition(":")
    return bool(colon) and len(password) >= 3 and decoded.isprintable()
