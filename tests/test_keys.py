"""One configured secret, one sub-key per purpose: the proxy never uses the configured text as an AES key."""

from __future__ import annotations

from slack_pii.keys import Keys, fingerprint
from slack_pii.services import SERVICES
from slack_pii.store.sqlite import Store
from tests.conftest import TEST_KEY, TEST_KEYS
from tests.factories import SSN
from tests.slack_double import double, proxy, proxy_settings  # noqa: F401 - fixtures


def test_each_purpose_gets_its_own_stable_key():
    secret = bytes.fromhex(TEST_KEY)
    keys = Keys.derive(secret)
    subkeys = [keys.at_rest, keys.fingerprints, keys.pseudonyms, keys.oauth_state]
    assert len(set(subkeys)) == 4 and all(len(k) == 32 for k in subkeys)
    assert secret[:32] not in subkeys
    assert Keys.derive(secret) == keys and Keys.derive(b"another secret of thirty-two bytes") != keys
    assert SSN not in repr(keys) and secret.hex() not in repr(keys)  # keys stay out of reprs and logs


async def test_a_held_original_opens_with_the_at_rest_subkey_only(proxy):
    store = proxy.app[SERVICES].store
    held_id = await store.hold(f"ssn {SSN}", user="U1", channel="C1")
    for key, readable in ((bytes.fromhex(TEST_KEY), False), (TEST_KEYS.fingerprints, False),
                          (TEST_KEYS.at_rest, True)):
        other = await Store.open(proxy.app[SERVICES].settings.database_path, key)
        try:
            held = await other.peek(held_id)
        finally:
            await other.close()
        assert (held is not None and held.text == f"ssn {SSN}") is readable


async def test_audit_callers_are_fingerprinted_with_the_fingerprint_subkey(proxy):
    keys = proxy.app[SERVICES].keys
    assert keys == TEST_KEYS and not keys.ephemeral
    assert fingerprint("xoxb-x", keys.fingerprints) != fingerprint("xoxb-x", bytes.fromhex(TEST_KEY))
