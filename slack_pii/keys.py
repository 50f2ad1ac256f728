"""The one configured secret, turned into one key per purpose, and the keyed fingerprint.

Each purpose gets its own sub-key (HKDF-SHA256 with the purpose as `info`), so a key that leaks through one use
(a pseudonym salt, a signed OAuth state) says nothing about the others, and the configured text is never used
as an AES key itself. Pure: no I/O, so the detection core may import it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32


def derive(secret: bytes, purpose: str) -> bytes:
    """The sub-key for `purpose` (a fixed label below); the same secret always gives the same sub-key."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                info=b"slack-pii-proxy/v1/" + purpose.encode()).derive(secret)


@dataclass(frozen=True)
class Keys:
    """Sub-keys of the configured secret. `ephemeral`: made up for this process only (nothing was configured and
    a read-only command must not write a key file), so its fingerprints and pseudonyms match nothing stored."""

    at_rest: bytes = field(repr=False)  # AES-GCM for held originals and users' tokens in the store
    fingerprints: bytes = field(repr=False)  # HMAC of callers, users and reported values (audit, allow-lists)
    pseudonyms: bytes = field(repr=False)  # the salt of `hash` replacements in redacted text
    oauth_state: bytes = field(repr=False)  # signs the OAuth `state`
    upload_urls: bytes = field(repr=False)  # signs the upload URLs the proxy hands out for files
    ephemeral: bool = False

    @classmethod
    def derive(cls, secret: bytes, *, ephemeral: bool = False) -> Keys:
        return cls(derive(secret, "at-rest"), derive(secret, "fingerprints"), derive(secret, "pseudonyms"),
                   derive(secret, "oauth-state"), derive(secret, "upload-urls"), ephemeral)

    @classmethod
    def one_off(cls) -> Keys:
        return cls.derive(secrets.token_bytes(KEY_BYTES), ephemeral=True)


def keys_for(settings, *, create: bool = True) -> Keys:
    """Sub-keys of the configured (or generated) secret. With `create=False` nothing is written: without a
    configured or already generated key the keys are one-off (`ephemeral`)."""
    secret = settings.key_bytes(create=create)
    return Keys.derive(secret) if secret is not None else Keys.one_off()


def fingerprint(value: str, key: bytes) -> str:
    """Keyed fingerprint of a value.

    NOTE: HMAC, not a plain hash: a 9-digit SSN space can be brute-forced from an unkeyed SHA-256.
    """
    return hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:24]
