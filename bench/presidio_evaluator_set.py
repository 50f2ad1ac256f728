"""A public yardstick from Microsoft's presidio-evaluator data generator, relabelled to our labelling standard.

presidio-evaluator (PyPI, MIT licence) ships the sentence templates (`templates.txt`) and fake-person records
(`FakeNameGenerator.com_3000.csv`) the Presidio team evaluates Presidio with. This script generates N messages
with its `PresidioSentenceFaker` (fixed seed) and maps every generated span onto our labels following
shared/LABELLING.md, dropping what the standard does not count. The mapping rules and the counts are written to
tests/data/presidio_evaluator/README.md next to the data.

    python3 bench/presidio_evaluator_set.py [--n 1500] [--seed 42] [--out tests/data/presidio_evaluator]

The generator's dependencies are heavy (transformers, scikit-learn, plotly ...) and are not ours, so the script
first makes a throwaway venv at bench/.venv-presidio-evaluator (gitignored), installs presidio-evaluator there with
--no-deps plus only what its data generator imports, and re-runs itself inside it. No model and no network (beyond
PyPI for that install) are needed: the one provider that would query WikiData (HospitalProvider, used by no
template) is left out. The output is byte-identical from run to run.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-presidio-evaluator"
PACKAGE = "presidio-evaluator==0.3.2"
# What `from presidio_evaluator.data_generator import PresidioSentenceFaker` needs to import and run, found by
# trying: the package's __init__ imports spacy (tokenisation helpers) and python-dotenv, the data generator
# imports presidio-analyzer / presidio-anonymizer (pseudonymisation helper), requests and PyYAML (providers).
# spaCy comes in as presidio-analyzer's dependency; no spaCy model is loaded. Faker, pandas and numpy are pinned
# because the generated values depend on them (Faker's word lists change between releases).
RUNTIME = ["faker==40.63.0", "pandas==3.1.1", "numpy==2.4.6", "tqdm==4.70.1", "python-dotenv==1.2.4",
           "pyyaml==6.0.4", "requests==2.34.2", "presidio-analyzer==2.2.366", "presidio-anonymizer==2.2.366"]
LOWER_CASE_RATIO = 0.05  # SentenceFaker's default and the value the package's own __main__ uses
LOCALE = "en_US"


# ------------------------------------------------------------------------------------------------ venv bootstrap
def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv() -> Path:
    stamp = VENV / ".installed"
    wanted = "\n".join([PACKAGE, *RUNTIME]) + "\n"
    if stamp.exists() and stamp.read_text() == wanted and venv_python().exists():
        return venv_python()
    if not venv_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(venv_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", PACKAGE], check=True)
    subprocess.run([*pip, *RUNTIME], check=True)
    stamp.write_text(wanted)
    return venv_python()


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


# ------------------------------------------------------------------------------------------------ validators
def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if len(digits) < 12:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def ssn_ok(value: str) -> bool:
    digits = re.sub(r"[\s-]", "", value)
    if not re.fullmatch(r"\d{9}", digits):
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def iban_ok(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def ip_ok(value: str) -> bool:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return False
    if ip.version == 4 and value.startswith("255."):  # a netmask: contiguous ones then zeros
        bits = int(ip)
        inverted = (~bits) & 0xFFFFFFFF
        if inverted & (inverted + 1) == 0:
            return False
    return True


# ------------------------------------------------------------------------------------------------ the mapping
# Placeholder names as they appear in templates.txt (lower-cased by the generator). The package's own mapping
# (PresidioSentenceFaker.ENTITY_TYPE_MAPPING) is shown in the README next to ours.
NAME_FULL = {"person", "name", "name_female", "name_male"}          # given + family name (sometimes a middle initial)
NAME_FIRST = {"first_name", "first_name_male", "first_name_female", "first_name_nonbinary"}
NAME_LAST = {"last_name", "last_name_male", "last_name_female"}
NAME_TITLE = {"prefix", "prefix_male", "prefix_female"}
ADDRESS_PARTS = {"address", "building_number", "street_name", "secondary_address", "city", "country", "state",
                 "state_abbr", "postcode", "zipcode"}
STREET_PARTS = {"address", "building_number", "street_name", "secondary_address"}
DIRECT = {"email": "EMAIL_ADDRESS", "phone_number": "PHONE_NUMBER", "credit_card_number": "CREDIT_CARD",
          "ssn": "US_SSN", "iban": "IBAN_CODE", "ip_address": "IP_ADDRESS", "us_driver_license": "US_DRIVER_LICENSE"}
NOT_OURS = {"organization": "ORGANIZATION", "nationality": "NRP", "nation_woman": "NRP", "nation_man": "NRP",
            "nation_plural": "NRP", "age": "AGE", "job": "TITLE", "url": "URL", "date_time": "DATE_TIME",
            "day_of_week": "DATE_TIME", "year": "DATE_TIME", "religion": "RELIGION"}

# Templates (exact text in templates.txt) whose street address belongs to a business, venue or public place, or
# is a street named in a story: LABELLING.md counts "a postal or street address of a person or customer" only.
NOT_A_PERSONS_ADDRESS = {
    "The restaurant is located at {{address}}. It serves great {{nationality}} food.",
    "So where are we meeting? There's this nice new {{nationality}} place downtown. Cool, what's the address? "
    "Oh do they serve vegan stuff? It's in {{address}}",
    "The address of {{organization}} is {{address}}",
    "Our offices are located at {{address}}",
    "{{organization}}\\n\\n{{address}}",
    "The {{organization}} office is at {{address}}",
    "The restaurant is at {{building_number}} {{street_name}}",
    "We'll meet {{day_of_week}} at {{organization}}, {{building_number}} {{street_name}}, {{city}}",
    "The title refers to {{street_name}} street in {{city}}. It was on this street that many of the clubs where "
    "Metallica first played were situated. \"Battery is found in me\" shows that these early shows on "
    "{{street_name}} Street were important to them. Battery is where \"lunacy finds you\" and you \"smash through "
    "the boundaries.\"",
    "Pedestrians must enter on {{street_name}} St. the first three months",
    "The bus station is on {{street_name}}",
    "The bus drops you off at {{building_number}} {{street_name}} St.",
    "Ask the driver to stop at the corner of {{street_name}} St. and {{street_name}} St.",
}
# Templates that state a city or country as where a specific person lives (LABELLING.md: "a city stated as where a
# specific person lives or moves to"). Every other stand-alone city/country/state is dropped: origins ("originally
# from", "moved here from", "grew up in"), trips, venues, companies, songs.
LIVES_IN = {
    "My friend lives in {{city}}",
    "I am {{nation_woman}} but I live in {{country}}.",
}
# Templates that state the date as a birth date (DATE_OF_BIRTH); "It's like that since {{date_of_birth}}" does not.
BIRTH_DATE = {
    "Please tell me your date of birth. It's {{date_of_birth}}",
    "She was born on {{date_of_birth}}. Her maiden name is {{last_name}}",
}
# Quote markers between the parts of one address block (">" comes out as "}}" in the raw generator output, see
# clean-up below) may sit in the gap; any other text ends the block.
BLOCK_GAP = re.compile(r"[ ,\n>?]*")
PHONE_EXTENSION = re.compile(r"x\d+$")


def check_template_sets(templates: list[str]) -> None:
    known = set(templates)
    for group in (NOT_A_PERSONS_ADDRESS, LIVES_IN, BIRTH_DATE):
        missing = group - known
        if missing:
            raise SystemExit(f"templates.txt changed, these templates are gone: {sorted(missing)}")


def clean_text(full_text: str, spans: list, lowered: bool) -> tuple[str, list[tuple[str, str, int, int]]]:
    """Two clean-ups of the generator's template text (never of an inserted value), offsets carried along.

    - templates.txt writes line breaks as the two characters backslash + n; the generator copies them verbatim.
      They become real line breaks (a Slack message has real ones; addresses "may span lines").
    - the generator turns every "<"/">" of a template into "{{"/"}}" (meant for "<name>" placeholders), so the
      e-mail quote markers of two templates come out as "}}"; they go back to ">".
    The package's lower_case_ratio step lower-cases the inserted values of a sample but, in 0.3.2, stores the
    lower-cased sentence in an attribute nothing reads (`InputSample.fake`), leaving `full_text` as it was. For
    those samples the whole text is lower-cased here, as the package intends, so that text and values agree.
    """
    pieces, out_spans, pos, cursor = [], [], 0, 0
    for span in sorted(spans, key=lambda s: s.start_position):
        gap = full_text[cursor:span.start_position].replace("\\n", "\n").replace("}}", ">").replace("{{", "<")
        pieces.append(gap)
        pos += len(gap)
        value = full_text[span.start_position:span.end_position]
        pieces.append(value)
        out_spans.append((span.entity_type, str(span.entity_value), pos, pos + len(value)))
        pos += len(value)
        cursor = span.end_position
    pieces.append(full_text[cursor:].replace("\\n", "\n").replace("}}", ">").replace("{{", "<"))
    text = "".join(pieces)
    if lowered:
        lower = text.lower()
        if len(lower) != len(text):  # a character whose lower case is longer: keep offsets safe, lower per char
            lower = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        text = lower
    return text, out_spans


def relabel(template: str, text: str, spans: list[tuple[str, str, int, int]], counts: Counter
            ) -> list[dict]:
    """Map the generator's spans (placeholder, value, start, end) of one message onto our labels."""
    result: list[dict] = []
    i = 0
    while i < len(spans):
        kind, value, start, end = spans[i]
        # -- names: a run of name parts joined by single spaces ("{{prefix_female}} {{last_name_female}}")
        if kind in NAME_FULL | NAME_FIRST | NAME_LAST | NAME_TITLE:
            j = i
            while (j + 1 < len(spans) and spans[j + 1][0] in NAME_FULL | NAME_FIRST | NAME_LAST | NAME_TITLE
                   and text[spans[j][3]:spans[j + 1][2]] == " "):
                j += 1
            kinds = [s[0] for s in spans[i:j + 1]]
            has_full = any(k in NAME_FULL for k in kinds)
            has_first = any(k in NAME_FIRST for k in kinds)
            has_last = any(k in NAME_LAST for k in kinds)
            has_title = any(k in NAME_TITLE for k in kinds)
            if has_full or (has_last and (has_first or has_title)):
                result.append({"start": start, "end": spans[j][3], "label": "PERSON"})
                counts["PERSON"] += 1
                if j > i:
                    counts["merged: title/name parts joined into one PERSON span"] += 1
            elif has_first:
                counts["dropped: lone given name (first_name*) - not a full name"] += 1
            elif has_last:
                counts["dropped: lone family name (last_name*) - not a full name"] += 1
            else:
                counts["dropped: lone title (prefix*)"] += 1
            i = j + 1
            continue
        # -- addresses: a run of address parts with only spaces/commas/line breaks/quote markers between them
        if kind in ADDRESS_PARTS:
            j = i
            while (j + 1 < len(spans) and spans[j + 1][0] in ADDRESS_PARTS
                   and BLOCK_GAP.fullmatch(text[spans[j][3]:spans[j + 1][2]])):
                j += 1
            kinds = [s[0] for s in spans[i:j + 1]]
            block_end = spans[j][3]
            if any(k in STREET_PARTS for k in kinds):
                if template in NOT_A_PERSONS_ADDRESS:
                    counts["dropped: street address of a business/venue/public place or in a story"] += 1
                else:
                    block_start = start
                    if text[start:block_end].lower().startswith("the corner of "):
                        block_start += len("the corner of ")
                        counts["trimmed: 'the corner of ' context left out of a LOCATION span"] += 1
                    result.append({"start": block_start, "end": block_end, "label": "LOCATION"})
                    counts["LOCATION"] += 1
                    counts["LOCATION from " + ("one {{address}} value" if kinds == ["address"]
                                               else "joined address parts " + "+".join(kinds))] += 1
            else:
                for k, part in zip(kinds, spans[i:j + 1]):
                    if k in ("city", "country", "state", "state_abbr") and template in LIVES_IN:
                        result.append({"start": part[2], "end": part[3], "label": "LOCATION"})
                        counts["LOCATION"] += 1
                        counts[f"LOCATION from {k} where a person lives"] += 1
                    elif k in ("zipcode", "postcode"):
                        counts["dropped: zip/postcode alone"] += 1
                    else:
                        counts[f"dropped: {k} not stated as where a person lives"] += 1
            i = j + 1
            continue
        if kind == "date_of_birth":
            if template in BIRTH_DATE:
                result.append({"start": start, "end": end, "label": "DATE_OF_BIRTH"})
                counts["DATE_OF_BIRTH"] += 1
            else:
                counts["dropped: date_of_birth value not stated as a birth date"] += 1
        elif kind in DIRECT:
            label = DIRECT[kind]
            ok = {"CREDIT_CARD": luhn_ok, "US_SSN": ssn_ok, "IBAN_CODE": iban_ok, "IP_ADDRESS": ip_ok}.get(
                label, lambda _v: True)(value)
            if not ok:
                counts[f"dropped: {label} failing its validity check (value stays in the text unlabelled)"] += 1
            else:
                if label == "PHONE_NUMBER" and (m := PHONE_EXTENSION.search(text[start:end])):
                    end = start + m.start()
                    counts["trimmed: phone extension (xNNN) left out of a PHONE_NUMBER span"] += 1
                result.append({"start": start, "end": end, "label": label})
                counts[label] += 1
        elif kind in NOT_OURS:
            counts[f"dropped: {kind} ({NOT_OURS[kind]}) - not one of our labels"] += 1
        else:
            counts[f"dropped: {kind} - unknown placeholder"] += 1
        i += 1
    return result


# ------------------------------------------------------------------------------------------------ generation
FAKER_NOW = 1767225600  # 2026-01-01T00:00:00Z, the "now" that Faker's dates are drawn up to


def freeze_faker_clock() -> None:
    """Faker draws date_time, year and day_of_week between 1970 and *now*: same seed, other values each day.

    Pin "now" to FAKER_NOW (only where no end date is given, which is the generator's case)."""
    from faker.providers.date_time import Provider as DateTimeProvider

    original = DateTimeProvider._parse_end_datetime.__func__

    def parse_end_datetime(cls, value):
        return FAKER_NOW if value is None else original(cls, value)

    DateTimeProvider._parse_end_datetime = classmethod(parse_end_datetime)


def generate(n: int, seed: int) -> tuple[list[dict], Counter, dict]:
    from presidio_evaluator.data_generator import (PresidioSentenceFaker, presidio_additional_entity_providers,
                                                   presidio_templates_file_path)
    from presidio_evaluator.data_generator.faker_extensions import HospitalProvider
    from presidio_evaluator.data_generator.faker_extensions.span_generator import _re_token

    freeze_faker_clock()
    raw_templates = [line.strip() for line in presidio_templates_file_path.read_text().splitlines()]
    check_template_sets(raw_templates)
    # Keep the generator's own placeholder names on the spans (identity mapping) instead of its coarse Presidio
    # types, so that e.g. first_name and person, or date_of_birth and date_time, can be told apart. The mapping
    # draws no random numbers, so the sentences are the ones the default mapping would give.
    placeholders = sorted({m.group()[2:-2].strip() for t in raw_templates
                           for m in _re_token.finditer(PresidioSentenceFaker._preprocess_template(t))})
    providers = [p for p in presidio_additional_entity_providers if p is not HospitalProvider]
    # PresidioSentenceFaker loads its fake people (load_fake_person_df draws, with the global `random`, whether a
    # full name gets a middle initial) before it seeds: seed first, or every run gets other names.
    random.seed(seed)
    faker = PresidioSentenceFaker(locale=LOCALE, lower_case_ratio=LOWER_CASE_RATIO, entity_providers=providers,
                                  entity_type_mapping={p: p for p in placeholders}, random_seed=seed)
    samples = faker.generate_new_fake_sentences(num_samples=n)

    counts: Counter = Counter()
    records = []
    for number, sample in enumerate(samples, start=1):
        template = raw_templates[sample.template_id]
        lowered = hasattr(sample, "fake")  # set only by the lower_case_ratio step, see clean_text
        counts["messages lower-cased (lower_case_ratio)"] += lowered
        text, spans = clean_text(sample.full_text, sample.spans, lowered)
        for kind, value, start, end in spans:  # every inserted value sits where the generator says it does
            if text[start:end] != value:
                raise SystemExit(f"offset mismatch in message {number}: {text[start:end]!r} != {value!r}")
            counts[f"generated: {kind}"] += 1
            if kind == "credit_card_number" and not luhn_ok(value):
                counts["credit cards failing Luhn"] += 1
        labelled = relabel(template, text, spans, counts)
        labelled.sort(key=lambda s: s["start"])
        for a, b in zip(labelled, labelled[1:]):
            if a["end"] > b["start"]:
                raise SystemExit(f"overlapping spans in message {number}: {a} {b}")
        for s in labelled:
            if not (0 <= s["start"] < s["end"] <= len(text)):
                raise SystemExit(f"span out of bounds in message {number}: {s}")
        records.append({"id": f"pe-{number:05d}", "text": text, "spans": labelled})
    info = {"templates": len(raw_templates), "templates_used": len({s.template_id for s in samples}),
            "placeholders": placeholders, "package_mapping": dict(PresidioSentenceFaker.ENTITY_TYPE_MAPPING)}
    return records, counts, info


# ------------------------------------------------------------------------------------------------ README
OUR_MAPPING = [
    ("person, name, name_female, name_male", "PERSON", "full names (given + family, some with a middle initial)"),
    ("prefix* + last_name* / name*", "PERSON", "title + family name (`Dr. Okafor`) or title + full name: one span incl. the title"),
    ("first_name, first_name_male/_female/_nonbinary alone", "(dropped)", "a lone given name is not a full name"),
    ("last_name, last_name_male/_female alone", "(dropped)", "a lone family name is neither given + family nor title + family"),
    ("prefix* alone", "(dropped)", "a title is not a name"),
    ("email", "EMAIL_ADDRESS", "all"),
    ("phone_number", "PHONE_NUMBER", "all; an extension `xNNN` is left out of the span"),
    ("credit_card_number", "CREDIT_CARD", "only if Luhn-valid (else dropped, value stays in the text unlabelled)"),
    ("ssn", "US_SSN", "only in valid ranges (area not 000/666/9xx, group not 00, serial not 0000)"),
    ("iban", "IBAN_CODE", "only if mod-97 valid"),
    ("ip_address", "IP_ADDRESS", "v4 and v6; not loopback, 0.0.0.0/::, or a 255.x netmask"),
    ("us_driver_license", "US_DRIVER_LICENSE", "all, as generated (state formats from faker-ruby)"),
    ("address; building_number, street_name, secondary_address (+ city, state_abbr, country, postcode, zipcode in the same block)",
     "LOCATION", "one span per postal address, from its first to its last part (may span lines); not when the "
     "template says it is a business's, venue's or public place's address, or a street in a story (list in the script)"),
    ("city / country / state alone", "LOCATION or (dropped)", "LOCATION only where the template states it as where "
     "a specific person lives (`My friend lives in {{city}}`, `I am ... but I live in {{country}}`); dropped elsewhere "
     "(origins, `moved here from`, `grew up in`, trips, venues, companies)"),
    ("zipcode / postcode alone", "(dropped)", "a zip code alone is not an address"),
    ("date_of_birth", "DATE_OF_BIRTH or (dropped)", "only in the two templates that say it is a birth date; dropped in "
     "`It's like that since {{date_of_birth}}`"),
    ("date_time, day_of_week, year", "(dropped)", "DATE_TIME is not ours"),
    ("organization, nationality, nation_*, age, job, url", "(dropped)", "ORGANIZATION, NRP, AGE, TITLE, URL are not ours"),
]
LABELS = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS", "PERSON", "LOCATION",
          "US_BANK_NUMBER", "US_PASSPORT", "US_DRIVER_LICENSE", "DATE_OF_BIRTH", "SECRET"]


def readme(records: list[dict], counts: Counter, info: dict, n: int, seed: int) -> str:
    per_label = Counter(s["label"] for r in records for s in r["spans"])
    empty = sum(1 for r in records if not r["spans"])
    generated = sorted((k.split(": ", 1)[1], v) for k, v in counts.items() if k.startswith("generated: "))
    notes = sorted((k, v) for k, v in counts.items()
                   if k.startswith(("dropped", "trimmed", "merged", "LOCATION from")))
    cmd = "python3 bench/presidio_evaluator_set.py" + ("" if (n, seed) == (1500, 42) else f" --n {n} --seed {seed}")
    lines = [
        "# presidio-evaluator messages",
        "",
        f"{len(records)} messages generated with Microsoft's `presidio-evaluator` data generator and relabelled to",
        "shared/LABELLING.md. A public yardstick: the templates and fake people are the ones the Presidio team uses,",
        "not written by us, and the labels were set without looking at our detection rules.",
        "",
        "## Provenance",
        f"- package: `{PACKAGE}` from PyPI, MIT licence (Copyright (c) Microsoft Corporation; see the package's LICENSE",
        "  and NOTICE). Its `data_generator/raw_data/templates.txt` "
        f"({info['templates']} templates, {info['templates_used']} drawn at least once here) and",
        "  `FakeNameGenerator.com_3000.csv` (fake people) are used as shipped.",
        f"- generator: `PresidioSentenceFaker(locale=\"{LOCALE}\", lower_case_ratio={LOWER_CASE_RATIO}, random_seed={seed})`,",
        f"  `generate_new_fake_sentences({n})`; {LOWER_CASE_RATIO} is the package's default (`SentenceFaker`) and what its own",
        "  `__main__` uses. Entity providers: the package's default list minus `HospitalProvider`, which queries WikiData",
        "  when constructed (no template uses it; this machine has no network). No spaCy model is loaded or needed.",
        "  The spans keep the template's placeholder names (identity `entity_type_mapping`, which draws no random",
        "  numbers, so the sentences are those of the default mapping) so that our mapping can tell `first_name` from",
        "  `person` and `date_of_birth` from `date_time`.",
        f"- run-time packages (pinned; Faker's word lists change between releases): {', '.join(f'`{p}`' for p in RUNTIME)},",
        "  in a throwaway venv `bench/.venv-presidio-evaluator` (presidio-evaluator itself with `--no-deps`: no",
        "  transformers, torch, scikit-learn or plotly).",
        f"- regenerate: `{cmd}` (byte-identical output; checked by running twice).",
        "  Two things the package leaves unseeded are pinned for that: `random` is seeded before",
        "  `PresidioSentenceFaker` loads its fake people (it draws middle initials while loading, before its own",
        "  seeding), and Faker's \"now\" (the upper bound of `date_time`, `year`, `day_of_week`) is fixed at",
        "  2026-01-01T00:00:00Z.",
        "",
        "## Clean-ups of the generator output (template text only, never an inserted value)",
        "- templates.txt writes line breaks as backslash + `n`; the generator copies the two characters. They become",
        "  real line breaks here (Slack messages have real ones).",
        "- the generator turns a template's `<`/`>` into `{{`/`}}` (meant for `<name>` placeholders), so the e-mail",
        "  quote markers of two signature templates came out as `}}`; they are `>` again.",
        "- lower_case_ratio: in 0.3.2 the step lower-cases a sample's span values but stores the lower-cased sentence",
        "  in an attribute nothing reads (`InputSample.fake`), so `full_text` keeps its case and no longer matches the",
        "  values. For those samples the whole text is lower-cased here, as the package intends "
        f"({counts['messages lower-cased (lower_case_ratio)']} messages).",
        "- kept as generated: the literal `\\,` in one signature template, the `{street_name}` single-brace placeholders",
        "  of `The corner of {street_name} and {street_name}` (not filled by the generator), the `\\ufffd` in",
        "  `My card ... expires soon \\ufffd when ...`, `nan` where a fake person has no state, house numbers doubled",
        "  by `{{building_number}} {{street_name}}` (the fake people's street_name already has one), and",
        "  driver-licence letters in lower case (faker's `bothify`).",
        "",
        "## Mapping (placeholder -> our label)",
        "Ours follow LABELLING.md; the package's own output type of each placeholder is in the last table.",
        "",
        "| placeholder(s) | our label | rule |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in OUR_MAPPING],
        "",
        "Templates whose street address is not a person's (every address part dropped):",
        "",
        *[f"- `{t}`" for t in sorted(NOT_A_PERSONS_ADDRESS)],
        "",
        "Templates whose stand-alone city/country is where a person lives (LOCATION):",
        "",
        *[f"- `{t}`" for t in sorted(LIVES_IN)],
        "",
        "Templates whose date_of_birth is stated as a birth date (DATE_OF_BIRTH):",
        "",
        *[f"- `{t}`" for t in sorted(BIRTH_DATE)],
        "",
        "Judgement calls worth knowing when reading the scores:",
        "- postal addresses of a person count whatever the tense (`I once lived in ...`), and so do the addresses in",
        "  a person's signature or contact block (name, job, company, address, phones), even when it may be the",
        "  office's; the address forms `the corner of A and B` (span starts at A) and `<given name> and <street>`",
        "  (the provider's intersection form, whole value) are kept as LOCATION because they are {{address}} values.",
        "- a LOCATION span joined from parts keeps what stands between them: line breaks, commas and, in the two",
        "  quoted-signature templates, the `> ` quote markers of the following lines.",
        "- faker's `name_male`/`name_female` sometimes carry a title or a suffix (`Mr. Felix Sorensen`, `... DVM`);",
        "  after a template's own title this gives `Mr. Mr. ...`: one PERSON span either way.",
        "- cities that are origins (`originally from`, `moved here from`, `grew up in`) are dropped: LABELLING.md",
        "  counts a city where a person lives or moves to.",
        "",
        "No template produces US_BANK_NUMBER, US_PASSPORT or SECRET values, so those labels have no spans here;",
        "the package's own types with no counterpart (ORGANIZATION, NRP, AGE, TITLE, DOMAIN_NAME, DATE_TIME,",
        "ZIP_CODE, GPE outside a person's address) leave their text in the message unlabelled.",
        "",
        "## Counts",
        f"- messages: {len(records)}; with no span: {empty}",
        f"- credit card numbers generated: {counts['generated: credit_card_number']}, of them failing Luhn (span dropped,"
        f" number left unlabelled in the text): {counts['credit cards failing Luhn']}",
        "- dropped for failing their validity check (value left in the text unlabelled): "
        + ", ".join(f"{label} {counts[f'dropped: {label} failing its validity check (value stays in the text unlabelled)']}"
                    for label in ("CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS")),
        f"- lone given names dropped: {counts['dropped: lone given name (first_name*) - not a full name']}; lone family"
        f" names dropped: {counts['dropped: lone family name (last_name*) - not a full name']}",
        "",
        "| our label | spans |",
        "|---|---|",
        *[f"| {label} | {per_label.get(label, 0)} |" for label in LABELS],
        f"| total | {sum(per_label.values())} |",
        "",
        "How the spans were formed, and what was dropped, merged or trimmed:",
        "",
        "| what | times |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in notes],
        "",
        "Values generated per placeholder (package type in parentheses):",
        "",
        "| placeholder | values | package type |",
        "|---|---|---|",
        *[f"| {k} | {v} | {info['package_mapping'].get(k, '-')} |" for k, v in generated],
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=str(ROOT / "tests" / "data" / "presidio_evaluator"))
    args = parser.parse_args()
    if not in_venv():
        python = ensure_venv()
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
    records, counts, info = generate(args.n, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "messages.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    (out / "README.md").write_text(readme(records, counts, info, args.n, args.seed), encoding="utf-8")
    per_label = Counter(s["label"] for r in records for s in r["spans"])
    print(f"wrote {len(records)} messages to {out / 'messages.jsonl'}: {dict(sorted(per_label.items()))}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
