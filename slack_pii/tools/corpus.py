"""A seeded generator of realistic, labelled Slack messages for `slack-pii eval` and `slack-pii bench`.

Each message is `{"id", "text", "spans": [{"start", "end", "label"}]}` with offsets into `text` (Python string
indices). The same seed always gives the same corpus, so a figure measured today can be compared tomorrow.

Label set (what a human reviewer would mark; `slack_pii.tools.evaluate.LABEL_OF` maps engine entities onto it):

  SECRET          every credential: Slack/AWS/GitHub/GitLab/Stripe/Google/OpenAI/npm/SendGrid tokens, JWTs, PEM
                  private keys, passwords (the value only, in `key=value` lines and connection strings)
  CREDIT_CARD     Luhn-valid card numbers          US_SSN          structurally valid SSNs
  PHONE_NUMBER    US and international numbers     EMAIL_ADDRESS   addresses on real public suffixes
  IBAN_CODE       mod-97-valid IBANs               US_BANK_NUMBER  account and ABA routing numbers (with context)
  IP_ADDRESS      IPv4 and IPv6                    DATE_OF_BIRTH   a date stated as someone's birth date
  PERSON          full person names in prose       LOCATION        cities and whole street addresses

Clean messages (no spans) deliberately look risky: versions, order ids, timestamps, UUIDs, git SHAs, docs
placeholders (YOUR_API_KEY, AKIAIOSFODNN7EXAMPLE, xoxb-xxxx), so false alarms are measured too.

    python -m slack_pii.tools.corpus --seed 7 --count 600 > tests/data/labelled_sample.jsonl
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import string
import sys
import zlib
from collections.abc import Callable, Iterator

import phonenumbers

LABELS = ("SECRET", "CREDIT_CARD", "US_SSN", "PHONE_NUMBER", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS", "PERSON",
          "LOCATION", "DATE_OF_BIRTH", "US_BANK_NUMBER")

ALNUM = string.ascii_letters + string.digits
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
B64URL = ALNUM + "-_"

FIRST = """James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan
Joseph Jessica Thomas Sarah Carlos Maria Priya Wei Aisha Mohammed Olga Hiroshi Fatima Lars Ingrid Diego Chen
Emily Daniel Sophia Kevin Rachel Nathan Grace Omar Elena Marcus Hannah Tomasz Anika Rafael Yuki""".split()
LAST = """Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Wilson Anderson
Thomas Taylor Moore Jackson Martin Lee Thompson White Harris Clark Lewis Robinson Walker Young Allen King Wright
Nguyen Patel Kowalski Schmidt Rossi Tanaka Okafor Andersson Novak Fischer Dubois Costa Haddad Ivanova Larsen""".split()
CITIES = """Chicago Boston Seattle Denver Austin Atlanta Portland Phoenix Toronto London Berlin Paris Madrid Dublin
Amsterdam Sydney Tokyo Singapore Mumbai Nairobi Lisbon Warsaw Stockholm Oslo Vienna Zurich""".split()
STATES = ["IL", "MA", "WA", "CO", "TX", "GA", "OR", "AZ", "NY", "CA"]
STREETS = """Maple Oak Pine Cedar Elm Washington Lincoln Jefferson Madison Franklin Highland Sunset Lakeview Hillcrest
Park Church Mill Spring Ridge Valley""".split()
SUFFIXES = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Lane", "Drive", "Court", "Way", "Place"]
DOMAINS = ["acme-corp.com", "gmail.com", "outlook.com", "yahoo.com", "globex.io", "initech.co.uk", "umbrella.de",
           "hooli.com", "stark-industries.net", "protonmail.com"]
SERVICES = ["api-gateway", "billing-svc", "auth", "search-indexer", "payments", "notifications", "checkout",
            "user-profile", "ledger", "ingest-worker"]
HOSTS = ["ip-10-0-3-17.ec2.internal", "web-7f9c4d-2xk8p", "db-primary.prod.acme.internal", "cache-02.stg",
         "k8s-node-14.us-east-1", "runner-ci-03", "bastion.acme.internal"]
EMOJI = [":eyes:", ":tada:", ":white_check_mark:", ":rotating_light:", ":thumbsup:", ":fire:", ":pray:", ":rocket:",
         ":sweat_smile:", ":thinking_face:", ":+1:", ":ship:"]
PHONE_REGIONS = [("US", 5), ("GB", 2), ("DE", 2), ("FR", 1), ("AU", 1), ("IN", 1), ("CA", 1)]
US_AREA = [212, 415, 646, 312, 617, 206, 512, 303, 404, 702, 213, 305, 773, 919, 503]


# --- value generators (each returns a realistic value; checksums where the real thing has one) ------------------


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _luhn_complete(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + _chars(rng, string.digits, length - len(prefix) - 1)
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:  # doubled positions once the check digit is appended
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


def card(rng: random.Random) -> str:
    kind = rng.choice(["visa", "visa", "mc", "amex", "discover"])
    if kind == "amex":
        number = _luhn_complete(rng, rng.choice(["34", "37"]), 15)
        sep = rng.choice([" ", "-", ""])
        return sep.join([number[:4], number[4:10], number[10:]]) if sep else number
    prefix = {"visa": "4", "mc": str(rng.randint(51, 55)), "discover": "6011"}[kind]
    number = _luhn_complete(rng, prefix, 16)
    sep = rng.choice([" ", " ", "-", ""])
    return sep.join(number[i:i + 4] for i in range(0, 16, 4))


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    digits = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
    sep = rng.choice(["-", "-", "-", " ", ""])
    return sep.join([digits[:3], digits[3:5], digits[5:]]) if sep else digits


def phone(rng: random.Random, region: str | None = None) -> str:
    region = region or rng.choices([r for r, _ in PHONE_REGIONS], [w for _, w in PHONE_REGIONS])[0]
    for _ in range(200):
        if region in ("US", "CA"):
            national = f"{rng.choice(US_AREA)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
            if national[3:6] == "555":
                continue
        else:
            example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE
                                                           if rng.random() < 0.6 else
                                                           phonenumbers.PhoneNumberType.FIXED_LINE)
            national = str(example.national_number)
            keep = max(3, len(national) - 6)
            national = national[:keep] + _chars(rng, string.digits, len(national) - keep)
        number = phonenumbers.parse(national, region)
        if phonenumbers.is_valid_number(number):
            break
    style = rng.random()
    if region == "US" and style < 0.7:
        n = national
        return rng.choice([f"({n[:3]}) {n[3:6]}-{n[6:]}", f"{n[:3]}-{n[3:6]}-{n[6:]}", f"{n[:3]}.{n[3:6]}.{n[6:]}",
                           f"+1 {n[:3]} {n[3:6]} {n[6:]}"])
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def email(rng: random.Random, name: str | None = None) -> str:
    first, last = (name or person(rng)).lower().split()
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}", f"{first}_{last}{rng.randint(1, 99)}"])
    return f"{local}@{rng.choice(DOMAINS)}"


def iban(rng: random.Random) -> str:
    country, bban = rng.choice([
        ("DE", lambda: _chars(rng, string.digits, 18)),
        ("GB", lambda: _chars(rng, string.ascii_uppercase, 4) + _chars(rng, string.digits, 14)),
        ("NL", lambda: _chars(rng, string.ascii_uppercase, 4) + _chars(rng, string.digits, 10)),
        ("FR", lambda: _chars(rng, string.digits, 23)),
        ("ES", lambda: _chars(rng, string.digits, 20)),
    ])
    bban = bban()
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    compact = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    if rng.random() < 0.6:
        return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))
    return compact


def routing_number(rng: random.Random) -> str:
    while True:
        digits = f"{rng.choice([1, 2, 3, 6, 7, 11, 21, 26, 31, 63]):02d}" + _chars(rng, string.digits, 6)
        weights = (3, 7, 1, 3, 7, 1, 3, 7)
        check = (10 - sum(int(d) * w for d, w in zip(digits, weights)) % 10) % 10
        return digits + str(check)


def bank_account(rng: random.Random) -> str:
    return str(rng.randint(1, 9)) + _chars(rng, string.digits, rng.randint(7, 11))


def dob(rng: random.Random) -> str:
    year, month, day = rng.randint(1945, 2004), rng.randint(1, 12), rng.randint(1, 28)
    months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December"]
    return rng.choice([f"{month:02d}/{day:02d}/{year}", f"{year}-{month:02d}-{day:02d}", f"{months[month - 1]} {day}, {year}",
                       f"{day} {months[month - 1][:3]} {year}"])


def street_address(rng: random.Random) -> str:
    street = f"{rng.randint(1, 9899)} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}"
    if rng.random() < 0.3:
        street += f", Apt {rng.randint(1, 40)}{rng.choice('ABCD')}"
    return f"{street}, {rng.choice(CITIES[:8])}, {rng.choice(STATES)} {rng.randint(10000, 99999)}"


def ipv4(rng: random.Random) -> str:
    return rng.choice([
        lambda: f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        lambda: f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        lambda: f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        lambda: f"{rng.choice([34, 52, 54, 81, 185, 203, 98])}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
    ])()


def ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xffff):x}" for _ in range(4)]
    return rng.choice([f"2001:db8:{rng.randint(0, 0xffff):x}::{groups[0]}", "2600:1f18:" + ":".join(groups) + ":1:2",
                       f"fe80::{groups[0]}:{groups[1]}:{groups[2]}:{groups[3]}"])


def slack_bot_token(rng: random.Random) -> str:
    return f"xoxb-{_chars(rng, string.digits, 13)}-{_chars(rng, string.digits, 13)}-{_chars(rng, ALNUM, 24)}"


def slack_user_token(rng: random.Random) -> str:
    ids = "-".join(_chars(rng, string.digits, rng.randint(10, 13)) for _ in range(3))
    return f"xoxp-{ids}-{_chars(rng, '0123456789abcdef', 32)}"


def slack_webhook(rng: random.Random) -> str:
    upper = string.ascii_uppercase + string.digits
    return (f"https://hooks.slack.com/services/T{_chars(rng, upper, 8)}/B{_chars(rng, upper, 10)}/"
            f"{_chars(rng, ALNUM, 24)}")


def aws_key_id(rng: random.Random) -> str:
    return rng.choice(["AKIA", "AKIA", "ASIA"]) + _chars(rng, string.ascii_uppercase + "234567", 16)


def aws_secret(rng: random.Random) -> str:
    return _chars(rng, ALNUM + "/+", 40)


def github_classic(rng: random.Random) -> str:
    """ghp_ + 30 base62 characters + their CRC32 in base62 (6 characters): what GitHub issues."""
    body = _chars(rng, ALNUM, 30)
    crc, check = zlib.crc32(body.encode()), ""
    while crc:
        crc, rest = divmod(crc, 62)
        check = BASE62[rest] + check
    return rng.choice(["ghp_", "ghp_", "gho_", "ghs_"]) + body + check.rjust(6, "0")


def github_fine_grained(rng: random.Random) -> str:
    return f"github_pat_11{_chars(rng, string.ascii_uppercase + string.digits, 20)}_{_chars(rng, ALNUM, 59)}"


def gitlab_token(rng: random.Random) -> str:
    return "glpat-" + _chars(rng, ALNUM + "-_", 20)


def stripe_key(rng: random.Random) -> str:
    return rng.choice(["sk_live_", "rk_live_", "sk_live_"]) + "51" + _chars(rng, ALNUM, rng.choice([22, 32, 97]))


def google_key(rng: random.Random) -> str:
    return "AIza" + _chars(rng, ALNUM + "-_", 35)


def openai_key(rng: random.Random) -> str:
    return f"sk-proj-{_chars(rng, ALNUM + '-_', 58)}T3BlbkFJ{_chars(rng, ALNUM + '-_', 58)}"


def npm_token(rng: random.Random) -> str:
    return "npm_" + _chars(rng, ALNUM, 36)


def sendgrid_key(rng: random.Random) -> str:
    return f"SG.{_chars(rng, ALNUM + '-_', 22)}.{_chars(rng, ALNUM + '-_', 43)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    header = {"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}
    payload = {"sub": f"user-{rng.randint(1000, 99999)}", "iat": rng.randint(1_700_000_000, 1_760_000_000),
               "scope": rng.choice(["read", "admin", "payments:write"])}
    payload["exp"] = payload["iat"] + 3600
    signature = bytes(rng.randrange(256) for _ in range(32))
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}.{_b64(signature)}"


def pem_key(rng: random.Random) -> str:
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY"])
    lines = [_chars(rng, ALNUM + "+/", 64) for _ in range(rng.randint(4, 10))]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"


def password(rng: random.Random, url_safe: bool = False) -> str:
    words = ["Summer", "Winter", "Falcon", "Tr0ub4dor", "Passw0rd", "Blue", "Rocket", "Maple", "Zebra", "Kappa"]
    symbols = "!_-" if url_safe else "!#$%&*_-+="
    if rng.random() < 0.5:
        return rng.choice(words) + str(rng.randint(10, 9999)) + rng.choice(symbols)
    return _chars(rng, ALNUM + symbols, rng.randint(12, 24))


def git_sha(rng: random.Random, n: int = 40) -> str:
    return _chars(rng, "0123456789abcdef", n)


def uuid(rng: random.Random) -> str:
    h = git_sha(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{rng.choice('89ab')}{h[17:20]}-{h[20:]}"


def mention(rng: random.Random) -> str:
    return f"<@U{_chars(rng, string.ascii_uppercase + string.digits, 10)}>"


def channel(rng: random.Random) -> str:
    name = rng.choice(["eng", "ops", "incidents", "payments-team", "random", "support", "deploys"])
    return f"<#C{_chars(rng, string.ascii_uppercase + string.digits, 10)}|{name}>"


# --- message builder ------------------------------------------------------------------------------------------


class Message:
    """Text assembled piece by piece; labelled pieces record their span as they are appended."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[dict] = []
        self.length = 0

    def add(self, text: str, label: str | None = None) -> Message:
        if label and text:
            self.spans.append({"start": self.length, "end": self.length + len(text), "label": label})
        self.parts.append(text)
        self.length += len(text)
        return self

    @property
    def text(self) -> str:
        return "".join(self.parts)


_SLOT = re.compile(r"«(\w+)»")


class Corpus:
    """Templates with «slot» markers; each slot fills a value and, for sensitive slots, a gold label."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        rng = self.rng
        self.labelled: dict[str, tuple[str, Callable[[], str]]] = {
            "card": ("CREDIT_CARD", lambda: card(rng)), "ssn": ("US_SSN", lambda: ssn(rng)),
            "phone": ("PHONE_NUMBER", lambda: phone(rng)), "us_phone": ("PHONE_NUMBER", lambda: phone(rng, "US")),
            "email": ("EMAIL_ADDRESS", lambda: email(rng)), "iban": ("IBAN_CODE", lambda: iban(rng)),
            "ip": ("IP_ADDRESS", lambda: ipv4(rng)), "ipv6": ("IP_ADDRESS", lambda: ipv6(rng)),
            "person": ("PERSON", lambda: person(rng)), "city": ("LOCATION", lambda: rng.choice(CITIES)),
            "address": ("LOCATION", lambda: street_address(rng)), "dob": ("DATE_OF_BIRTH", lambda: dob(rng)),
            "account": ("US_BANK_NUMBER", lambda: bank_account(rng)),
            "routing": ("US_BANK_NUMBER", lambda: routing_number(rng)),
            "slack_bot": ("SECRET", lambda: slack_bot_token(rng)), "slack_user": ("SECRET", lambda: slack_user_token(rng)),
            "webhook": ("SECRET", lambda: slack_webhook(rng)), "aws_id": ("SECRET", lambda: aws_key_id(rng)),
            "aws_secret": ("SECRET", lambda: aws_secret(rng)), "gh": ("SECRET", lambda: github_classic(rng)),
            "gh_fine": ("SECRET", lambda: github_fine_grained(rng)), "gitlab": ("SECRET", lambda: gitlab_token(rng)),
            "stripe": ("SECRET", lambda: stripe_key(rng)), "google": ("SECRET", lambda: google_key(rng)),
            "openai": ("SECRET", lambda: openai_key(rng)), "npm": ("SECRET", lambda: npm_token(rng)),
            "sendgrid": ("SECRET", lambda: sendgrid_key(rng)), "jwt": ("SECRET", lambda: jwt(rng)),
            "pem": ("SECRET", lambda: pem_key(rng)), "password": ("SECRET", lambda: password(rng)),
            "url_password": ("SECRET", lambda: password(rng, url_safe=True)),
        }
        self.plain: dict[str, Callable[[], str]] = {
            "mention": lambda: mention(rng), "channel": lambda: channel(rng), "emoji": lambda: rng.choice(EMOJI),
            "service": lambda: rng.choice(SERVICES), "host": lambda: rng.choice(HOSTS),
            "sha": lambda: git_sha(rng, rng.choice([7, 12, 40])), "uuid": lambda: uuid(rng),
            "version": lambda: f"{rng.randint(0, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}",
            "n": lambda: str(rng.randint(2, 99)), "pr": lambda: str(rng.randint(1000, 9999)),
            "order": lambda: f"ORD-{rng.randint(2020, 2026)}-{rng.randint(100000, 999999)}",
            "ts": lambda: f"{rng.randint(1_700_000_000, 1_760_000_000)}.{rng.randint(0, 999999):06d}",
            "ms": lambda: str(rng.randint(3, 4000)), "port": lambda: str(rng.choice([443, 5432, 6379, 8080, 9200, 3306])),
            "hhmm": lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
            "date": lambda: f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "first": lambda: rng.choice(FIRST), "ticket": lambda: f"{rng.choice(['OPS', 'ENG', 'SEC', 'PAY'])}-{rng.randint(100, 9999)}",
            "amount": lambda: f"${rng.randint(5, 4999)}.{rng.randint(0, 99):02d}",
            "user": lambda: rng.choice(["app", "svc_api", "admin", "readonly", "etl"]),
            "db": lambda: rng.choice(["orders", "billing", "users", "analytics"]),
        }

    def render(self, template: str) -> Message:
        message = Message()
        position = 0
        for match in _SLOT.finditer(template):
            message.add(template[position:match.start()])
            slot = match.group(1)
            if slot in self.labelled:
                label, make = self.labelled[slot]
                message.add(make(), label)
            else:
                message.add(self.plain[slot]())
            position = match.end()
        message.add(template[position:])
        return message

    def pick(self, templates: list[str]) -> Message:
        return self.render(self.rng.choice(templates))

    # --- message kinds ----------------------------------------------------------------------------------------

    def chat(self) -> Message:
        return self.pick(CHAT)

    def risky_clean(self) -> Message:
        return self.pick(RISKY_CLEAN)

    def leak(self) -> Message:
        return self.pick(LEAKS)

    def alert(self) -> Message:
        return self.pick(ALERTS)

    def code(self) -> Message:
        return self.pick(CODE)

    def mrkdwn(self) -> Message:
        return self.pick(MRKDWN)

    def log_paste(self) -> Message:
        """A pasted log: mostly noise lines, a few with IPs or emails, sometimes a leaked token."""
        rng = self.rng
        lines = [rng.choice(["here's the log from prod:", "logs below, any idea?", "seeing this on staging:",
                             "pasting the output"]) + "\n```"]
        for _ in range(rng.randint(12, 45)):
            lines.append(rng.choice(LOG_LEAKS if rng.random() < 0.05 else LOG_NOISE))
        lines.append("```")
        return self.render("\n".join(lines))

    def stack_trace(self) -> Message:
        rng = self.rng
        return self.render(rng.choice(TRACE_INTROS) + "\n```\n" + rng.choice(TRACES) + "\n```")

    def messages(self, count: int) -> Iterator[dict]:
        kinds = [(self.chat, 20), (self.risky_clean, 16), (self.leak, 26), (self.alert, 10), (self.log_paste, 6),
                 (self.stack_trace, 5), (self.code, 13), (self.mrkdwn, 10)]
        makers, weights = zip(*kinds)
        for index in range(count):
            message = self.rng.choices(makers, weights)[0]()
            yield {"id": f"msg-{index + 1:05d}", "text": message.text, "spans": message.spans}


def generate(count: int, seed: int = 7) -> list[dict]:
    """`count` labelled messages; the same seed always gives the same list."""
    return list(Corpus(seed).messages(count))


# --- templates --------------------------------------------------------------------------------------------------

CHAT = [
    "morning all «emoji»", "standup: yesterday finished the retry logic, today reviewing «mention»'s PR, no blockers",
    "anyone else seeing slow builds today?", "lunch at 12?", "thanks, that fixed it «emoji»",
    "can someone review PR #«pr» when you get a chance?", "I'll be out tomorrow afternoon, ping me on mobile if urgent",
    "is the staging env down or is it just me", "heads up: deploying «service» in 10 min",
    "done, merged «emoji»", "sounds good", "np!", "let me check and get back to you",
    "retro notes are in the doc, please add yours before Friday", "did we ever decide on the new on-call rotation?",
    "ok cool, I'll take the ticket", "how do I get access to the analytics dashboard?",
    "Yesterday: «ticket», «ticket». Today: more «ticket». Blockers: waiting on infra",
    "great work on the launch everyone «emoji» «emoji»", "brb", "what's the wifi password in the new office? asking for a guest",
    "the flaky test is back :(", "Who owns the «service» alerts these days?", "Happy Friday! «emoji»",
    "Quick question: do we still support Python 3.9 in the SDK?", "Standup in 5, join the huddle",
    "Thanks «mention», really appreciate the help with the migration",
    "I'm working from «city» this week, so I'll be a few hours ahead", "Welcome «mention» to the team! «emoji»",
    "«person» is covering on-call for me until Monday", "Met with «person» from the vendor, notes in the doc",
    "planning offsite in «city» next quarter, who's in?",
]

RISKY_CLEAN = [
    "released v«version» to prod, changelog in «channel»", "order «order» shipped, tracking updated",
    "commit «sha» fixed the regression", "request id «uuid» timed out after «ms» ms",
    "slack ts «ts» is the parent message", "bumped the lib from «version» to «version»",
    "set `API_KEY=YOUR_API_KEY` in your .env, then run make dev",
    "the docs use AKIAIOSFODNN7EXAMPLE as the access key, don't copy it literally",
    "export SLACK_BOT_TOKEN=xoxb-your-token-here", "token is `xoxb-xxxxxxxxxxxx-xxxxxxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx` in the template",
    "password: ******** (redacted before pasting)", "use `password: ${DB_PASSWORD}` in the helm values",
    "stripe test key from their docs: sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "call at «hhmm» UTC, ratio was 3:2:1", "invoice total «amount» for order «order»",
    "deploy on «date» went fine, rollback window closes at «hhmm»", "ticket «ticket» and «ticket» are dupes",
    "build #«pr» took «ms» seconds, cache hit rate 93.4%", "error code 0x80070005 when running the installer",
    "port «port» is already in use", "ping support@example.com for the customer template",
    "`git revert «sha»` then force push", "ENV=staging DEBUG=true LOG_LEVEL=info make run",
    "trace id «uuid», span «sha»", "table has 1,204,553 rows after backfill, 2,210 dupes removed",
    "postgres://user:password@localhost:5432/dev is the local default, change nothing",
    "`aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY` is the sample from the AWS docs",
    "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx is what the placeholder looks like", "«n» of «n» checks passed",
    "latency p99 went from «ms»ms to «ms»ms after the cache change",
    "```\nAPI_KEY=<your-api-key>\nSECRET={{ vault_secret }}\n```",
]

LEAKS = [
    "customer says the charge on card «card» went through twice, can someone refund?",
    "her card is «card» exp 09/27, please update the subscription",
    "SSN for the background check: «ssn»", "the applicant's ssn is «ssn», DOB «dob»",
    "call me at «phone» if the deploy breaks", "customer callback number: «phone»",
    "«person» called from «phone» about the invoice", "can you reach «person» at «email»? they never got the reset link",
    "forwarding from «email»: they want a copy of their data", "contact: «email» / «us_phone»",
    "wire the refund to IBAN «iban»", "bank details for the vendor: IBAN «iban», contact «email»",
    "ship the replacement to «address» please", "new address for «person»: «address»",
    "patient DOB: «dob», name «person»", "she was born on «dob» so the age check should pass",
    "checking account «account», routing number «routing»", "direct deposit: account «account», routing «routing»",
    "«person» (DOB «dob», SSN «ssn») needs the form resubmitted", "user «email» logged in from «ip»",
    "my number is «phone», text me when you're outside", "the user at «address» says the package never arrived",
    "Escalation from «person» in «city»: card «card» declined, callback «phone»",
    "«person», «email», «phone» - that's the lead from the conference",
    "Hi «person», your account «account» at the bank shows a pending deposit, contact us at «phone»",
]

ALERTS = [
    ":rotating_light: [FIRING:1] HighErrorRate «service» prod\ninstance: «ip»:9100\nsummary: 5xx rate above 5% for 10m",
    "[RESOLVED] DiskPressure on «host» («ip»), usage back under 80%",
    "CI failed: «service» build #«pr» on main (commit «sha»)\n```\nFAILED tests/test_api.py::test_refund - AssertionError\n```",
    "PagerDuty: Incident #«pr» triggered - «service» p99 latency > «ms»ms on «host»",
    "Deploy «service» v«version» to production succeeded «emoji» (by «mention», «ms»s)",
    "GuardDuty: UnauthorizedAccess:EC2/SSHBruteForce from «ip» against «host»",
    "Datadog: [Warn] CPU on «host» at 91% (threshold 85%)",
    "*New login* to admin console from «ip» («city»), user «email»",
    "CI: «service» deploy failed, webhook «webhook» returned 404",
    "nginx: upstream timed out (110) while connecting to upstream, client: «ip», server: api.acme.io, upstream: http://«ip»:«port»",
    "WAF blocked «n» requests from «ipv6» in the last 5 minutes",
    "Dependabot: bumped «service» dependency to «version», all checks passed",
]

LOG_NOISE = [
    "«date»T«hhmm»:01.233Z INFO  «service» request completed status=200 duration_ms=«ms»",
    "«date»T«hhmm»:02.871Z WARN  «service» retrying upstream call attempt=«n»",
    "«date»T«hhmm»:03.102Z INFO  «service» cache hit key=user:«uuid»",
    "«date»T«hhmm»:04.551Z ERROR «service» connection refused host=«host» port=«port»",
    "«date»T«hhmm»:05.010Z DEBUG «service» trace_id=«uuid» span_id=«sha»",
    "«date»T«hhmm»:06.400Z INFO  «service» GET /api/v2/orders/«order» 200 «ms»ms",
    "«date»T«hhmm»:08.777Z WARN  «service» slow query «ms»ms on table «db»",
    "«date»T«hhmm»:11.005Z INFO  «service» worker pid=«ms» started, version «version»",
    "«date»T«hhmm»:12.918Z INFO  «service» healthcheck ok",
]
LOG_LEAKS = [
    "«date»T«hhmm»:07.009Z INFO  «service» accepted connection from «ip»",
    "«date»T«hhmm»:09.120Z INFO  «service» sent receipt to «email»",
    "«date»T«hhmm»:10.321Z ERROR «service» auth failed for token «slack_bot»",
    "«date»T«hhmm»:10.980Z WARN  «service» payment declined for card «card»",
]

TRACE_INTROS = ["prod is throwing this since the last deploy:", "anyone seen this before?", "stack trace from «host»:",
                "getting this in CI, only on main"]
TRACES = [
    "Traceback (most recent call last):\n  File \"/app/«service»/handlers.py\", line «ms», in post\n    resp = client.charge(amount)\n"
    "  File \"/usr/lib/python3.11/site-packages/stripe/api_requestor.py\", line 412, in request\n    raise error.AuthenticationError(msg)\n"
    "stripe.error.AuthenticationError: Invalid API Key provided: «stripe»",
    "Traceback (most recent call last):\n  File \"/srv/app/db.py\", line 88, in connect\n    conn = psycopg2.connect(dsn)\n"
    "psycopg2.OperationalError: connection to server at \"«host»\" («ip»), port «port» failed: timeout expired",
    "java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"name\" is null\n"
    "    at com.acme.billing.InvoiceService.render(InvoiceService.java:«n»)\n    at com.acme.billing.InvoiceController.get(InvoiceController.java:«n»)\n"
    "    at org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)",
    "Error: connect ECONNREFUSED «ip»:«port»\n    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)\n"
    "    at process.processTicksAndRejections (node:internal/process/task_queues:82:21)",
    "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a5f2e]\n\n"
    "goroutine 1 [running]:\nmain.(*Server).handle(0x0, {0xc000012345, 0x«n»})\n\t/src/server.go:«n» +0x2e",
    "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://api.github.com/user\n"
    "  headers: {'Authorization': 'token «gh»', 'User-Agent': 'deploy-bot'}",
]

CODE = [
    "here's my .env, what am I missing?\n```\nDATABASE_URL=postgres://«user»:«url_password»@db.internal:5432/«db»\nREDIS_URL=redis://cache:6379\nDEBUG=false\n```",
    "```\nAWS_ACCESS_KEY_ID=«aws_id»\naws_secret_access_key = «aws_secret»\nAWS_REGION=us-east-1\n```",
    "try with this token: `«slack_bot»`", "use my PAT for now: «gh» (will rotate after)",
    "```\nexport GITHUB_TOKEN=«gh_fine»\ngh pr list\n```", "the stripe key in prod is «stripe» - rotate it?",
    "```\ncurl -H \"Authorization: Bearer «jwt»\" https://api.acme.io/v1/me\n```",
    "found this in the repo history :scream:\n```\n«pem»\n```",
    "```yaml\ndb:\n  host: db.internal\n  user: «user»\n  password: «password»\n```",
    "`DB_PASSWORD=«password»` is what staging uses", "my password is «password» if you need to log in as me",
    "```\nOPENAI_API_KEY=«openai»\nMODEL=gpt-4o\n```", "google maps key: «google»",
    "```\n//registry.npmjs.org/:_authToken=«npm»\n```", "SENDGRID_API_KEY=«sendgrid»",
    "```python\nclient = WebClient(token=\"«slack_user»\")\nclient.chat_postMessage(channel=\"#ops\", text=\"hi\")\n```",
    "Post to «webhook» from the cron job", "gitlab runner token: «gitlab»",
    "```\nmongodb+srv://«user»:«url_password»@cluster0.mongodb.net/«db»?retryWrites=true\n```",
    "```json\n{\"name\": \"«service»\", \"version\": \"«version»\", \"scripts\": {\"test\": \"jest\"}}\n```",
    "```python\ndef retry(fn, attempts=3):\n    for i in range(attempts):\n        try:\n            return fn()\n        except TimeoutError:\n            time.sleep(2 ** i)\n```",
    "```\nkubectl -n prod rollout restart deploy/«service»\n```",
]

MRKDWN = [
    "«mention» can you check «channel»? «emoji»", "<!here> release train leaves at «hhmm», see <https://github.com/acme/«service»/pull/«pr»|PR «pr»>",
    "*Reminder:* update your tickets before standup _please_ «emoji»", "> quoted from the thread\nagreed with «mention»",
    "<https://acme.atlassian.net/browse/«ticket»|«ticket»> is ready for QA", "• item one\n• item two\n• «mention» owns the third",
    "ping <mailto:«email»|«email»> for the contract", "moving this to «channel», thanks «mention»",
    "«mention» «mention» «mention» sync at «hhmm»? «emoji»", "~old plan~ new plan in <https://docs.acme.io/plan|the doc>",
    "<!channel> office closed Monday «emoji»", "dm'd «mention» with the details, call «us_phone» if urgent",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slack_pii.tools.corpus", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--count", type=int, default=600)
    args = parser.parse_args(argv)
    for record in Corpus(args.seed).messages(args.count):
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
