"""Values in records get their key or column header as context (detect/structured.py)."""

import pytest

from slack_pii.detect.structured import field_findings, keyed_values, looks_like_person, normalise_key


def found(text):
    return {(text[f.start:f.end], f.entity) for f in field_findings(text)}


@pytest.mark.parametrize("text, value, entity", [
    ("name,ssn,dob\npriya raman,536-22-4586,04/23/1987", "536-22-4586", "US_SSN"),
    ("name,ssn,dob\npriya raman,536-22-4586,04/23/1987", "04/23/1987", "DATE_OF_BIRTH"),
    ("name,ssn,dob\npriya raman,536-22-4586,04/23/1987", "priya raman", "PERSON"),
    ("name\tpassport_number\nJUNG HYE-JIN\tA12345678", "A12345678", "US_PASSPORT"),
    ('{"dl_number": "D1234567", "state": "CA"}', "D1234567", "US_DRIVER_LICENSE"),
    ("Driver License: A 560 546 747 054  State: MI", "A 560 546 747 054", "US_DRIVER_LICENSE"),
    ("INSERT INTO people (full_name, birth_date) VALUES ('Adaeze Okafor', '1990-03-03');", "1990-03-03",
     "DATE_OF_BIRTH"),
    ("INSERT INTO people (full_name, birth_date) VALUES ('Adaeze Okafor', '1990-03-03');", "Adaeze Okafor", "PERSON"),
    ("| employee | account_number | routing |\n|---|---|---|\n| Tomasz Wójcik | 945245367 | 121000358 |",
     "945245367", "US_BANK_NUMBER"),
    ("| employee | account_number | routing |\n|---|---|---|\n| Tomasz Wójcik | 945245367 | 121000358 |",
     "121000358", "ABA_ROUTING_NUMBER"),
    ("    environment:\n      MYSQL_ROOT_PASSWORD: p9lp1uf07a5of0\n", "p9lp1uf07a5of0", "GENERIC_SECRET"),
    ("Beneficiary: nguyen thi lan", "nguyen thi lan", "PERSON"),
])
def test_a_value_under_its_key_is_found(text, value, entity):
    assert (value, entity) in found(text)


@pytest.mark.parametrize("text", [
    'account_name,segment\n"Wells Fargo",enterprise',
    '{"account": "123456789012", "region": "us-east-1"}',
    "postgresql:\n  auth:\n    existingSecret: pg-credentials",
    "db_password: ENC[AES256_GCM,data:61G1+wOpePQUZeWk2DIZ4eGp,iv:h1w0xpLE=]",
    "export SLACK_SIGNING_SECRET=${SIGNING_SECRET}",
    '{"name": "prod", "enabled": true}',
    "dob: tbd",
    "passport_expiry: 2025-01-01",
])
def test_keys_that_do_not_name_the_value_find_nothing(text):
    assert not found(text)


def test_keys_are_normalised():
    assert normalise_key("Date of Birth") == "date_of_birth"
    assert normalise_key("dlNumber") == "dl_number"
    assert normalise_key("MYSQL_ROOT_PASSWORD") == "mysql_root_password"


def test_quoted_csv_cells_keep_their_commas():
    text = 'candidate,ssn\n"Tanaka, Hina",043-98-4505'
    cells = {(text[v.start:v.end], v.key) for v in keyed_values(text)}
    assert ("Tanaka, Hina", "candidate") in cells and ("043-98-4505", "ssn") in cells


def test_person_shape():
    assert looks_like_person("Nguyễn Thị Lan") and looks_like_person("o'brien, sean")
    assert not looks_like_person("prod") and not looks_like_person("svc account 2") and not looks_like_person("N/A")


@pytest.mark.parametrize("text, value, entity", [
    ('{"document": {"type": "P", "number": "982966321", "issuing_country": "USA"}}', "982966321", "US_PASSPORT"),
    ('{\n  "type": "drivers_license",\n  "issuing_state": "WA",\n  "number": "WDL45I1WCRG5"\n}', "WDL45I1WCRG5",
     "US_DRIVER_LICENSE"),
    ('env:\n- name: DB_PASSWORD\n  value: "-rqG2aQQa_51S_+b0rpao4HF"', "-rqG2aQQa_51S_+b0rpao4HF", "GENERIC_SECRET"),
    ('{"key": "apiKey", "value": "965c7532547321a52cd0e6d4f1bd29de", "enabled": true}',
     "965c7532547321a52cd0e6d4f1bd29de", "GENERIC_SECRET"),
])
def test_a_generic_key_takes_its_kind_from_the_record(text, value, entity):
    assert (value, entity) in found(text)
