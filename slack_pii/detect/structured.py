"""Values in records: the key or column header a value stands under is its context.

People paste records: CSV/TSV with a header row, markdown tables, JSON objects, YAML, `.env` files, `Key: value`
forms, SQL `INSERT INTO t (cols) VALUES (...)`. A nearby-word context window cannot see a header three rows up,
so this module pairs each value span with its key (`keyed_values`), and `field_findings` turns the pairs whose key
names a kind of value (`ssn`, `dob`, `passport_no`, `dl_number`, `account_number`, `name`, `*_PASSWORD` ...) and
whose value has that kind's shape into findings. Pure text in, spans out; no Presidio here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from slack_pii.detect.validators import aba_checksum, plausible_date, shannon_entropy, ssn_structure


@dataclass(frozen=True)
class KeyedValue:
    """A value span in the text and the key (normalised: lowercase words joined by `_`) it stands under."""

    start: int
    end: int
    key: str


@dataclass(frozen=True)
class FieldFinding:
    start: int
    end: int
    entity: str
    category: str
    rule: str
    key: str


_NEXT_PAIR = re.compile(r"[,;|]\s*[A-Za-z][\w .#/\-]{0,30}:\s")  # where a second `key:` starts on a line


def normalise_key(key: str) -> str:
    """`Date of Birth` -> `date_of_birth`, `dlNumber` -> `dl_number`, `MYSQL_ROOT_PASSWORD` -> `mysql_root_password`."""
    key = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", key.strip().strip("\"'`*[]"))
    return "_".join(w for w in re.split(r"[^\w]+|_", key.lower()) if w)


# --- finding keyed values -----------------------------------------------------------------------------------

_JSON_PAIR = re.compile(r"""(?P<q>["'])(?P<key>[A-Za-z_][\w .\-]{0,40})(?P=q)\s*:\s*(?:(?P<vq>["'])(?P<value>[^"'\n]{1,4096})(?P=vq)|(?P<num>-?\d[\d\-. ]{0,30}\d)(?=\s*[,}\]\n]))""")
# `Key: value`, `KEY=value`, `key = value`, YAML `key: value`, `- key: value`, `export KEY=value`, `[15:30] Name:`.
_LINE_PAIR = re.compile(
    r"(?m)^[ \t]*(?:[-*•>][ \t]+)?(?:export[ \t]+)?(?P<key>[A-Za-z\u00C0-\u024F\u1E00-\u1EFF][\w\u00C0-\u024F\u1E00-\u1EFF .#/'()\-]{0,40}?)"
    r"[ \t]*(?::=|=|:(?!//))[ \t]*(?P<value>[^\n]{1,4096})$")
# `- name: DB_PASSWORD` / `value: ...` (Kubernetes env), `{"key": "apiKey", "value": "..."}` (Postman, Helm sets)
_NAME_VALUE = re.compile(r"""(?P<q>["']?)(?:name|key)(?P=q)[ \t]*:[ \t]*["']?(?P<key>[A-Za-z_][\w.\-]{0,60})["']?[ \t]*(?:,[ \t]*|\n[ \t]*-?[ \t]*)(?P<q2>["']?)value(?P=q2)[ \t]*:[ \t]*(?P<vq>["']?)(?P<value>[^"'\n,}]{1,4096})""")
_ADDRESS_BLOCK = re.compile(r"(?im)^[ \t]*(?P<key>[\w ]{0,24}?(?:address|adresse|anschrift|adres|endereço|dirección|indirizzo))[ \t]*:[ \t]*\n"
                            r"(?P<value>(?:[ \t]*[^\n:]{2,60}(?:\n|$)){1,4}?[ \t]*[^\n:]{2,60})(?=\n[ \t]*\n|\n[^\n:]{0,30}:|\n```|$)")
# A generic `number`/`id` key takes its kind from the record around it ({"type": "P", "number": ...}).
_GENERIC_NUMBER_KEYS = frozenset("number document_number doc_number id_number document_no number_value".split())
_PAIR_IN_LINE = re.compile(r"(?:^|(?<=[,;|]))[ \t]*(?P<key>[A-Za-z][\w .#/\-]{0,30}?)[ \t]*:[ \t]*(?P<value>[^,;|\n]{1,120})")
_INSERT = re.compile(r"(?is)insert\s+into\s+[\w.`\"\[\]]+\s*\((?P<cols>[^)]{1,1000})\)\s*values\s*(?P<rows>.+?)(?:;|$)")
_TUPLE = re.compile(r"\((?P<body>(?:'(?:[^']|'')*'|\([^()']*\)|[^()'])*)\)")


def keyed_values(text: str) -> list[KeyedValue]:
    """Every value span this module can pair with a key: JSON pairs, key/value lines, table cells, SQL values."""
    found: list[KeyedValue] = []
    for m in _JSON_PAIR.finditer(text):
        group = "value" if m.group("value") is not None else "num"
        found.append(KeyedValue(m.start(group), m.end(group), normalise_key(m.group("key"))))
    for m in _LINE_PAIR.finditer(text):
        key, start = m.group("key"), m.start("value")
        if key.startswith(("http", "https")) or '"' in key:
            continue
        value = m.group("value")
        if next_pair := _NEXT_PAIR.search(value):  # `name: X, dob: Y, ssn: Z` on one line
            found.append(_strip(text, KeyedValue(start, start + next_pair.start(), normalise_key(key))))
            for inner in _PAIR_IN_LINE.finditer(value):
                if inner.start() == 0:
                    continue
                found.append(_strip(text, KeyedValue(start + inner.start("value"), start + inner.end("value"),
                                                     normalise_key(inner.group("key")))))
            continue
        # a second `Key:` after two spaces on the same line ends this value (`Driver License: X  State: MI`)
        cut = re.search(r"\s{2,}[A-Z][\w ]{1,20}:\s", value)
        found.append(_strip(text, KeyedValue(start, start + (cut.start() if cut else len(value)), normalise_key(key))))
    for m in _ADDRESS_BLOCK.finditer(text):  # `Postal address:` then the address on the next lines
        found.append(_strip(text, KeyedValue(m.start("value"), m.end("value"), normalise_key(m.group("key")))))
    for m in _NAME_VALUE.finditer(text):
        found.append(_strip(text, KeyedValue(m.start("value"), m.end("value"), normalise_key(m.group("key")))))
    found = [_generic_number_kind(text, v) for v in found]
    found += _table_cells(text)
    found += _insert_values(text)
    return [v for v in found if v.end > v.start and v.key]


def _generic_number_kind(text: str, value: KeyedValue) -> KeyedValue:
    if value.key not in _GENERIC_NUMBER_KEYS:
        return value
    before = text[max(0, value.start - 240):value.start].lower()
    if "passport" in before or re.search(r"""["']type["']\s*:\s*["']p["']""", before):
        return KeyedValue(value.start, value.end, "passport_number")
    if "licen" in before or "driver" in before:
        return KeyedValue(value.start, value.end, "dl_number")
    return value


def _strip(text: str, value: KeyedValue) -> KeyedValue:
    """Trim spaces, quotes, backticks and a trailing comment or comma from a value span."""
    start, end = value.start, value.end
    while start < end and text[start] in " \t\"'`“”«»‘’":
        start += 1
    while end > start and text[end - 1] in " \t\"'`,;“”«»‘’\r":
        end -= 1
    hash_at = text.find(" #", start, end)
    if hash_at > start:
        end = hash_at
        while end > start and text[end - 1] in " \t\"'`,;":
            end -= 1
    return KeyedValue(start, end, value.key)


def _split_cells(line: str, delimiter: str) -> list[tuple[int, int]]:
    """Cell spans of one delimited line, honouring double quotes (CSV); spans exclude quotes and spaces."""
    spans, position, length = [], 0, len(line)
    while position <= length:
        start = position
        if position < length and line[position] == '"':
            close = position + 1
            while True:
                close = line.find('"', close)
                if close < 0 or close + 1 >= length or line[close + 1] != '"':
                    break
                close += 2
            close = length if close < 0 else close
            spans.append((position + 1, close))
            position = line.find(delimiter, close)
            position = length + 1 if position < 0 else position + 1
            continue
        end = line.find(delimiter, position)
        end = length if end < 0 else end
        spans.append((start, end))
        position = end + 1
    trimmed = []
    for start, end in spans:
        while start < end and line[start] in " \t":
            start += 1
        while end > start and line[end - 1] in " \t\r":
            end -= 1
        trimmed.append((start, end))
    return trimmed


_HEADER_CELL = re.compile(r"[A-Za-z_][\w .#/\-]{0,40}")


def _table_cells(text: str) -> Iterator[KeyedValue]:
    """CSV/TSV/pipe tables: a header line of name-like cells, then rows with the same number of cells."""
    lines, offset = [], 0
    for line in text.split("\n"):
        lines.append((offset, line))
        offset += len(line) + 1
    index = 0
    while index < len(lines):
        start, line = lines[index]
        delimiter = next((d for d in ("\t", "|", ",") if line.count(d) >= 1), None)
        if delimiter is None:
            index += 1
            continue
        body = line.strip().strip("|") if delimiter == "|" else line
        header = _split_cells(body, delimiter)
        names = [body[a:b] for a, b in header]
        if len(header) < 2 or not all(_HEADER_CELL.fullmatch(n) for n in names):
            index += 1
            continue
        keys = [normalise_key(n) for n in names]
        row = index + 1
        while row < len(lines):
            row_start, row_line = lines[row]
            if delimiter == "|" and re.fullmatch(r"\s*\|?[\s:|+\-]+\|?\s*", row_line):  # markdown/psql separator
                row += 1
                continue
            row_body = row_line.strip().strip("|") if delimiter == "|" else row_line
            row_shift = row_line.find(row_body) if delimiter == "|" else 0
            cells = _split_cells(row_body, delimiter)
            if len(cells) != len(header):
                break
            for key, (a, b) in zip(keys, cells):
                yield KeyedValue(row_start + row_shift + a, row_start + row_shift + b, key)
            row += 1
        index = row if row > index + 1 else index + 1


def _insert_values(text: str) -> Iterator[KeyedValue]:
    """SQL `INSERT INTO t (a, b) VALUES (...), (...)`: each value under its column name."""
    for m in _INSERT.finditer(text):
        keys = [normalise_key(c) for c in m.group("cols").split(",")]
        rows_start = m.start("rows")
        for row in _TUPLE.finditer(m.group("rows")):
            body_start = rows_start + row.start("body")
            for key, (a, b) in zip(keys, _split_sql(row.group("body"))):
                yield KeyedValue(body_start + a, body_start + b, key)


def _split_sql(body: str) -> list[tuple[int, int]]:
    spans, position, start, quoted = [], 0, 0, False
    while position < len(body):
        char = body[position]
        if char == "'":
            if quoted and position + 1 < len(body) and body[position + 1] == "'":
                position += 2
                continue
            quoted = not quoted
        elif char == "," and not quoted:
            spans.append((start, position))
            start = position + 1
        position += 1
    spans.append((start, len(body)))
    out = []
    for a, b in spans:
        while a < b and body[a] in " \t\n'":
            a += 1
        while b > a and body[b - 1] in " \t\n'":
            b -= 1
        out.append((a, b))
    return out


# --- which keys name which values ---------------------------------------------------------------------------

def _words(key: str) -> set[str]:
    return set(key.split("_"))


PERSON_KEYS = frozenset("""
name full_name fullname legal_name customer_name client_name employee employee_name patient patient_name applicant
applicant_name author beneficiary beneficiary_name traveller traveler traveller_name traveler_name passenger
passenger_name cardholder cardholder_name card_holder name_on_card account_holder holder contact
contact_name candidate candidate_name guest guest_name recipient recipient_name sender_name tenant member
member_name insured policyholder emergency_contact next_of_kin nombre nombre_completo nom name_surname ad_soyad
imie_i_nazwisko ho_ten ho_va_ten vorname_nachname first_last requester reporter assignee signed_by signatory
driver owner parent guardian student student_name manager manager_name caller claimant data_subject subject_name
display_name displayname fn cn titular cliente client paziente paciente patient_full_name customer lead lead_name
person person_of_contact point_of_contact poc emergency_contact_name spouse insured_name payee payee_name payer
payer_name account_holder_name holder_name name_on_account applicant_full_name employee_full_name full_legal_name
nombre_del_titular nom_complet vollständiger_name name_as_on_passport
""".split())
DOB_KEYS = frozenset("""
dob d_o_b date_of_birth birth_date birthdate birthday born date_born geburtsdatum geb fecha_de_nacimiento
fecha_nacimiento date_de_naissance data_di_nascita data_de_nascimento dogum_tarihi doğum_tarihi data_urodzenia
ngay_sinh ngày_sinh birth_dt dob_date
""".split())
SSN_KEYS = frozenset("ssn ssn_number social social_security social_security_number social_security_no ss_number "
                     "ssn_no soc_sec_no".split())
PASSPORT_KEYS = frozenset("passport passport_no passport_number passport_num passport_nr passport_id pasaporte "
                          "passeport reisepass".split())
LICENSE_KEYS = frozenset("""
dl dl_no dl_number dl_num dl_id driver_license drivers_license driver_licence drivers_licence driver_license_number
drivers_license_number driver_licence_number license_number licence_number license_no licence_no license licence
dln driving_licence driving_license
""".split())
ACCOUNT_KEYS = frozenset("""
account_number account_no account_num acct acct_no acct_number acct_num bank_account bank_account_number
checking checking_account savings savings_account deposit_account account iban_or_account
""".split())
ADDRESS_KEYS = frozenset("""
address home_address current_address postal_address mailing_address shipping_address billing_address
beneficiary_address street_address residential_address permanent_address address_line correspondence_address
adres adresse anschrift endereço endereco domicilio dirección direccion indirizzo địa_chỉ dia_chi residence
new_address delivery_address
""".split())
PHONE_KEYS = frozenset("""
phone phone_number phone_no mobile mobile_number mobile_phone cell cell_phone cellphone tel telephone contact_number
contact_phone emergency_phone emergency_contact_phone home_phone work_phone whatsapp fax telefono teléfono telefone
téléphone telefon handy celular movil móvil sdt sđt
""".split())
ROUTING_KEYS = frozenset("routing routing_number routing_no aba aba_number rtn transit_number".split())
# A setting's last word(s) that say its value is a credential.
_SECRET_TAILS = ("password", "passwd", "pwd", "pass", "passphrase", "secret", "token", "apikey", "api_key",
                 "access_key", "secret_key", "private_key", "privatekey", "client_key_data", "accountkey",
                 "account_key", "auth_token", "license_key", "signing_key", "encryption_key", "master_key",
                 "app_key", "webhook_secret", "client_secret", "become_pass", "become_password", "senha",
                 "contraseña", "contrasena", "passwort", "kennwort", "haslo", "hasło", "wachtwoord", "mot_de_passe",
                 "mat_khau", "mật_khẩu", "sifre", "şifre", "pin")
_NOT_SECRET_WORDS = frozenset("""
id ids name names url uri path file type length len size count format header prefix version expiry expires ttl
endpoint source public policy hint field label min max enabled required reset changed manager store vault env
file_path secret_name secret_ref ref arn kind mode hash
""".split())


def secret_key(key: str) -> bool:
    words = key.split("_")
    if not words or words[-1] in _NOT_SECRET_WORDS or {"public", "csrf", "xsrf", "publishable"} & set(words):
        return False
    return key in _SECRET_TAILS or any(key.endswith("_" + tail) for tail in _SECRET_TAILS)


# --- value shapes -------------------------------------------------------------------------------------------

_SSN = re.compile(r"\d{3}([\- ]?)\d{2}\1\d{4}")
_PASSPORT = re.compile(r"[A-Z]?\d{8,9}")
_LICENSE = re.compile(r"WDL[A-Z0-9*]{9}|(?=(?:[^\d\n]*\d){5})(?:[A-Z]{1,3}[ \-]?)?[A-Z0-9*]{1,14}(?:[ \-][A-Z0-9]{1,6}){0,5}")
_ACCOUNT = re.compile(r"\d{6,17}")
_PHONE = re.compile(r"(?:\+|00)?[\d(][\d ().\-/]{5,22}\d")
_ROUTING = re.compile(r"\d{9}")
_DATE = re.compile(r"(?i)\d{1,4}[/\-. ]\d{1,2}[/\-. ]\d{2,4}|\d{1,2}(?:st|nd|rd|th)?\.?\s+[a-zà-ÿ]{3,10}\.?,?\s+\d{4}|"
                   r"[a-z]{3,10}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}|\d{1,2}\s+de\s+[a-zà-ÿ]+\s+de\s+\d{4}")
_NAME_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’\-.])*")
_NOT_NAME = frozenset("""
n/a na none null unknown tbd test admin root user service bot system prod staging dev default true false yes no
the and of for api app web db team ops support billing sales inc ltd llc gmbh corp co
""".split())


def looks_like_person(value: str) -> bool:
    """Two to five words of letters (any script), not a sentence, not an id, not an ALL-CAPS code alone."""
    words = value.replace(",", " ").split()
    if not 2 <= len(words) <= 5 or len(value) > 60:
        return False
    if not all(_NAME_WORD.fullmatch(w) for w in words):
        return False
    if any(w.lower().strip(".") in _NOT_NAME for w in words):
        return False
    return sum(len(w.strip(".")) > 1 for w in words) >= 2


_PASSWORD_TAILS = ("password", "passwd", "pwd", "pass", "passphrase", "senha", "contraseña", "contrasena", "passwort",
                   "kennwort", "haslo", "hasło", "wachtwoord", "mot_de_passe", "mat_khau", "mật_khẩu", "sifre", "şifre")


def _secret_value(value: str, key: str = "") -> bool:
    if len(value) < 4 or len(value) > 4096 or " " in value.strip() or not re.search(r"[^\W_]", value):
        return False
    if value[0] in "{[" and value[-1] in "}]":  # templated or a structure, not a value
        return False
    if re.match(r"AgB[A-Za-z0-9+/]{60,}", value):  # Bitnami sealed-secret ciphertext: safe to commit by design
        return False
    if not key.endswith(_PASSWORD_TAILS) and (len(value) < 12 or not re.search(r"\d", value)
                                              or not re.search(r"[A-Za-z]", value)):
        return False  # keys and tokens are long and mixed; a short word under `*_KEY` is a name or a setting
    if re.fullmatch(r"(?i)true|false|null|none|nil|yes|no|\d{1,5}|[a-z]+|[A-Z_]+|https?://\S*", value):
        return False
    if value.startswith(("$", "{{", "${", "<", "%", "os.", "env.", "process.", "secrets.", "vault:", "!", "ENC[")):
        return False
    if re.fullmatch(r"[a-z]+(?:[_\-.][a-z]+)+", value):  # a name of something (`existingSecret: pg-credentials`)
        return False
    return not (len(value) >= 16 and shannon_entropy(value) < 2.5)


@dataclass(frozen=True)
class FieldKind:
    rule: str
    entity: str
    category: str
    keys: Callable[[str], bool]
    shape: Callable[[str, str], bool]


def _fullmatch(pattern: re.Pattern, check: Callable[[str], bool | None] | None = None) -> Callable[[str, str], bool]:
    def shape(value: str, key: str = "") -> bool:
        return bool(pattern.fullmatch(value)) and (check is None or check(value) is not False)
    return shape


FIELD_KINDS = (
    FieldKind("field-ssn", "US_SSN", "government_id", SSN_KEYS.__contains__, _fullmatch(_SSN, ssn_structure)),
    FieldKind("field-date-of-birth", "DATE_OF_BIRTH", "personal", DOB_KEYS.__contains__, _fullmatch(_DATE, plausible_date)),
    FieldKind("field-passport", "US_PASSPORT", "government_id", PASSPORT_KEYS.__contains__, _fullmatch(_PASSPORT)),
    FieldKind("field-driver-license", "US_DRIVER_LICENSE", "government_id", LICENSE_KEYS.__contains__,
              lambda v, k: len(v) <= 24 and bool(_LICENSE.fullmatch(v)) and not _DATE.fullmatch(v)),
    FieldKind("field-bank-account", "US_BANK_NUMBER", "financial", ACCOUNT_KEYS.__contains__,
              lambda v, k: bool(_ACCOUNT.fullmatch(v.replace("-", "").replace(" ", ""))) and len(set(v)) > 2),
    FieldKind("field-routing-number", "ABA_ROUTING_NUMBER", "financial", ROUTING_KEYS.__contains__,
              _fullmatch(_ROUTING, aba_checksum)),
    FieldKind("field-address", "STREET_ADDRESS", "location", ADDRESS_KEYS.__contains__,
              lambda v, k: 8 <= len(v) <= 160 and bool(re.search(r"\d", v)) and bool(re.search(r"[^\W\d_]{3}", v))
              and not re.fullmatch(r"[\w.+\-]+@[\w.\-]+|https?://\S+|[\d.:/]+", v)),
    FieldKind("field-phone", "PHONE_NUMBER", "contact", PHONE_KEYS.__contains__,
              lambda v, k: bool(_PHONE.fullmatch(v)) and 7 <= sum(c.isdigit() for c in v) <= 15),
    FieldKind("field-person", "PERSON", "person", PERSON_KEYS.__contains__, lambda v, k: looks_like_person(v)),
    FieldKind("field-secret", "GENERIC_SECRET", "credential", secret_key, _secret_value),
)
FIELD_SCORE = 0.85
_AWS_CONTEXT = re.compile(r"(?i)arn:aws|\baws\b|\"region\"|account[_ ]?id")


def field_findings(text: str, is_placeholder: Callable[[str], str | None] | None = None) -> list[FieldFinding]:
    """Keyed values whose key names a kind of value and whose value has that kind's shape."""
    out = []
    aws = None
    for kv in keyed_values(text):
        value = text[kv.start:kv.end]
        for kind in FIELD_KINDS:
            if not kind.keys(kv.key):
                continue
            if kind.entity == "PERSON" and not kind.shape(value, kv.key):
                # `Cliente: Gonçalo Ferreira, e-mail ...`: the name ends at the first separator
                cut = re.search(r"\s*(?:[,;|(<]|\s[—–-]\s|\s\d)", value)
                if cut and kind.shape(value[:cut.start()], kv.key):
                    out.append(FieldFinding(kv.start, kv.start + cut.start(), kind.entity, kind.category, kind.rule,
                                            kv.key))
                    break
                continue
            if not kind.shape(value, kv.key):
                continue
            if kind.entity == "US_BANK_NUMBER" and kv.key == "account":
                aws = aws if aws is not None else bool(_AWS_CONTEXT.search(text))
                if aws:
                    continue
            if kind.category == "credential" and is_placeholder and is_placeholder(value):
                continue
            out.append(FieldFinding(kv.start, kv.end, kind.entity, kind.category, kind.rule, kv.key))
            break
    return out
