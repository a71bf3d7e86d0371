"""Issue 21, items 1, 2 and 4: the wrap/unwrap/mac seam, the PKCS#11 store against a real SoftHSM2
token, and the data-key cache; in-process, no database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from support.hsm import new_token

from strongroom.crypto.envelope import DekCache, Envelope, Sealed
from strongroom.crypto.keyring import DecryptionError, FileKeyProvider, KeyChain, KeyringError, wrap_aad
from strongroom.crypto.tokens import Hasher

AAD = b"exchange-account|0b9c7a5e-0000-4000-8000-000000000001|7|binance"


def file_chain(tmp_path: Path) -> tuple[KeyChain, dict]:
    store = FileKeyProvider(tmp_path / "master.key")
    return KeyChain(store), json.loads((tmp_path / "master.key").read_text())


def test_the_file_provider_keeps_the_stored_format(tmp_path: Path) -> None:
    """A record sealed the way every earlier release did (12-byte nonce + AES-GCM(KEK, DEK, version|AAD))
    opens through the seam, and what the seam seals opens the old way: no re-encryption to upgrade."""
    chain, doc = file_chain(tmp_path)
    kek = base64.b64decode(doc["versions"]["1"])
    dek, nonce, wrap_nonce = os.urandom(32), os.urandom(12), os.urandom(12)
    old = Sealed(AESGCM(dek).encrypt(nonce, b"secret", AAD), nonce,
                 wrap_nonce + AESGCM(kek).encrypt(wrap_nonce, dek, b"strongroom-dek|v1|" + AAD), 1)
    envelope = Envelope(chain)
    assert envelope.open(old, AAD) == b"secret"
    new = envelope.seal(b"other", AAD)
    old_dek = AESGCM(kek).decrypt(new.wrapped_dek[:12], new.wrapped_dek[12:], b"strongroom-dek|v1|" + AAD)
    assert AESGCM(old_dek).decrypt(new.nonce, new.ciphertext, AAD) == b"other"


def test_hashes_keep_the_pepper_through_mac(tmp_path: Path) -> None:
    """Token hashes and fingerprints computed through ``mac`` equal those computed from the pepper itself
    (what the database holds for every bearer key issued so far)."""
    chain, doc = file_chain(tmp_path)
    pepper = base64.b64decode(doc["pepper"])
    token_key = hmac.new(pepper, b"strongroom token hash v1", hashlib.sha256).digest()
    hasher = Hasher(chain.mac)
    assert hasher.token("sr_abc") == hmac.new(token_key, b"sr_abc", hashlib.sha256).hexdigest()
    fingerprint_key = hmac.new(pepper, b"strongroom exchange key fingerprint v1", hashlib.sha256).digest()
    assert hasher.fingerprint("binance", "k") == hmac.new(fingerprint_key, b"binance\0k", hashlib.sha256).hexdigest()


@pytest.fixture
def token():
    return new_token()


def test_pkcs11_wraps_inside_the_hsm_and_rotates_there(token) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    from strongroom.crypto.pkcs11keys import Pkcs11KeyStore

    store = Pkcs11KeyStore(token.library, token.label, token.pin)
    chain = KeyChain(store)
    assert chain.versions() == []
    assert chain.rotate() == 1
    envelope = Envelope(chain)
    sealed = envelope.seal(b"exchange secret", AAD)
    assert sealed.kek_version == 1 and len(sealed.wrapped_dek) == 12 + 32 + 16
    assert envelope.open(sealed, AAD) == b"exchange secret"
    with pytest.raises(DecryptionError):  # the AAD is bound inside the HSM: a record moved to another row fails
        chain.unwrap(1, sealed.wrapped_dek, AAD + b"x")
    with pytest.raises(DecryptionError):
        chain.unwrap(1, sealed.wrapped_dek[:-1] + bytes([sealed.wrapped_dek[-1] ^ 1]), AAD)

    # a rotation inside the HSM: version 2 is a new key on the token; version 1 still opens its records
    assert chain.rotate() == 2 and chain.current_version == 2
    assert envelope.rewrap(sealed, AAD).kek_version == 2
    assert Envelope(chain).open(sealed, AAD) == b"exchange secret"

    # the KEKs are non-extractable and sensitive: their bytes cannot be read out of the token
    with token.session() as session:
        keys = {k[Attribute.LABEL]: k for k in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})}
        assert set(keys) == {"strongroom-kek-v1", "strongroom-kek-v2"}
        for key in keys.values():
            assert key[Attribute.EXTRACTABLE] is False and key[Attribute.SENSITIVE] is True
            with pytest.raises(pkcs11.exceptions.PKCS11Error):
                key[Attribute.VALUE]

    # a second process sees the new version without a restart
    assert Pkcs11KeyStore(token.library, token.label, token.pin).versions() == [1, 2]


def test_pkcs11_two_creators_of_one_version_never_leave_two_keys_of_one_label(token) -> None:
    """PKCS#11 does not keep labels unique: a version another process creates between this one's check and
    its key generation makes this one back out (its key destroyed, nothing sealed under it), and a token
    that holds two keys of one label is refused rather than one of them picked."""
    from pkcs11 import Attribute, KeyType, ObjectClass

    from strongroom.crypto.keyring import KeyringError
    from strongroom.crypto.pkcs11keys import LABEL, Pkcs11KeyStore

    def competitor() -> None:
        with token.session() as session:
            session.generate_key(KeyType.AES, 256, label=LABEL.format(1), store=True)

    store = Pkcs11KeyStore(token.library, token.label, token.pin)
    store.versions()  # opens the store's session

    class Racing:
        """The store's session, with another process creating the same version just before it does."""

        def __init__(self, session: object) -> None:
            self.session = session

        def __getattr__(self, name: str) -> object:
            return getattr(self.session, name)

        def generate_key(self, *args: object, **kwargs: object) -> object:
            competitor()
            return self.session.generate_key(*args, **kwargs)  # type: ignore[attr-defined]

    store._session = Racing(store._session)
    with pytest.raises(KeyringError, match="at the same time"):
        store.create_version(1)
    with token.session() as session:
        labels = [k[Attribute.LABEL] for k in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})]
    assert labels == [LABEL.format(1)]  # only the competitor's key is left
    assert Pkcs11KeyStore(token.library, token.label, token.pin).versions() == [1]

    competitor()  # two keys labelled v1 (e.g. left by a crash between creating and backing out)
    with pytest.raises(KeyringError, match="two keys labelled"):
        Pkcs11KeyStore(token.library, token.label, token.pin).versions()


def test_pkcs11_mac_is_the_imported_pepper(token) -> None:
    from pkcs11 import Attribute

    from strongroom.crypto.pkcs11keys import PEPPER, Pkcs11KeyStore

    store = Pkcs11KeyStore(token.library, token.label, token.pin)
    assert not store.has_pepper()
    pepper = os.urandom(32)
    store.import_pepper(pepper)
    assert store.mac(b"strongroom token hash v1") == hmac.digest(pepper, b"strongroom token hash v1", "sha256")
    assert store.export_pepper() is None
    with pytest.raises(KeyringError, match="already holds"):
        store.import_pepper(pepper)
    with token.session() as session:
        key = session.get_key(label=PEPPER)
        assert key[Attribute.EXTRACTABLE] is False and key[Attribute.SENSITIVE] is True


def test_pkcs11_unreachable_token_is_one_clear_error(token) -> None:
    from strongroom.crypto.pkcs11keys import pkcs11_store

    with pytest.raises(KeyringError, match="cannot be reached"):
        pkcs11_store(token.library, "no-such-token", token.pin, None)
    with pytest.raises(KeyringError, match="STRONGROOM_PKCS11_PIN"):
        pkcs11_store(token.library, token.label, None, None)


class CountingKeys:
    """A chain that counts unwraps (what would be HSM or KMS round trips)."""

    def __init__(self, chain: KeyChain) -> None:
        self.chain = chain
        self.unwraps = 0

    @property
    def current_version(self) -> int:
        return self.chain.current_version

    def versions(self) -> list[int]:
        return self.chain.versions()

    def wrap(self, dek: bytes, aad: bytes) -> tuple[int, bytes]:
        return self.chain.wrap(dek, aad)

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        self.unwraps += 1
        return self.chain.unwrap(version, wrapped, aad)

    def mac(self, data: bytes) -> bytes:
        return self.chain.mac(data)

    def rotate(self) -> int:
        return self.chain.rotate()


def test_the_dek_cache_saves_round_trips_and_is_bounded_in_count_and_time(tmp_path: Path) -> None:
    chain, _ = file_chain(tmp_path)
    now = [0.0]
    keys = CountingKeys(chain)
    cache = DekCache(2, 10.0)
    cache._cache = type(cache._cache)(2, 10.0, timer=lambda: now[0])  # a clock the test moves
    envelope = Envelope(keys, cache)
    records = [(envelope.seal(b"r%d" % i, AAD + b"%d" % i), AAD + b"%d" % i) for i in range(3)]
    keys.unwraps = 0
    Envelope(keys, DekCache(0, 10.0)).open(*records[2])
    Envelope(keys, DekCache(0, 10.0)).open(*records[2])
    assert keys.unwraps == 2  # no cache: a round trip per open

    keys.unwraps = 0
    for _ in range(5):
        assert envelope.open(*records[2]) == b"r2"
    assert keys.unwraps == 0  # sealed a moment ago: its data key is cached
    assert envelope.open(*records[0]) == b"r0" and keys.unwraps == 1  # evicted (size 2): unwrapped again
    assert len(cache) == 2
    now[0] = 11.0  # past the TTL: nothing is kept
    assert len(cache) == 0
    envelope.open(*records[2])
    assert keys.unwraps == 2


def test_an_evicted_data_key_is_overwritten(tmp_path: Path) -> None:
    cache = DekCache(1, 60.0)
    cache.put(1, b"w1", AAD, b"k" * 32)
    held = next(iter(cache._cache.values()))
    cache.put(1, b"w2", AAD, b"j" * 32)  # evicts the first
    assert held == bytearray(32)
    assert cache.get(1, b"w1", AAD) is None and cache.get(1, b"w2", AAD) == b"j" * 32


def test_a_wrapped_key_is_bound_to_its_version(tmp_path: Path) -> None:
    """A data key wrapped under one version does not open when a row claims another one."""
    chain, _ = file_chain(tmp_path)
    version, wrapped = chain.wrap(b"d" * 32, AAD)
    assert wrap_aad(AAD, version).startswith(b"strongroom-dek|v1|")
    chain.rotate()
    store = chain.owner(2)
    assert isinstance(store, FileKeyProvider)
    store.restore_version(2, store.kek(1))  # even were version 2's KEK the same bytes
    with pytest.raises(DecryptionError):
        chain.unwrap(2, wrapped, AAD)
    assert chain.unwrap(1, wrapped, AAD) == b"d" * 32
