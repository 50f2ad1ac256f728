"""Payload and finding factories, so tests state only what matters."""

from __future__ import annotations

from slack_pii.detect.findings import Finding

# Realistic values that every detector must catch (fake, but valid by checksum where a checksum exists).
CARD = "4111 1111 1111 1111"
SSN = "078-05-1123"
EMAIL = "jane.doe@acme-corp.com"
PHONE = "(415) 555-0132"
SLACK_BOT = "xoxb-2176513720196-2193830572625-3bNfJdIL9nFHpJ8oyg1QaXkG"
AWS_KEY = "AKIALALEMEL33243OLIB"
IBAN = "DE89 3704 0044 0532 0130 00"


def finding(entity="EMAIL_ADDRESS", start=0, end=5, score=1.0, rule="email-address", category="contact",
            value="x@y.z", path=()) -> Finding:
    return Finding(entity, start, end, score, rule, "test pattern", category, path, (), value)


def message(text: str = "hello", **extra) -> dict:
    return {"channel": "C0123456789", "text": text, **extra}


def section(text: str, kind: str = "mrkdwn") -> dict:
    return {"type": "section", "text": {"type": kind, "text": text}}


class Clock:
    """An injectable clock: tests move `now` instead of sleeping."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
