"""Authentication schemes without HTTP: each scheme verifies a request's credentials against a fake
key directory (strongroom.auth.directory.KeyDirectory) and returns a claim; nothing here starts a
server or a database. Also: the two-credential rule of RequestFacts and the replay claim of the
in-memory limiter."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import time
import uuid
from typing import Any, Literal

import pytest

from strongroom.auth.directory import Claim, KeyDirectory
from strongroom.auth.facts import CREDENTIAL_HEADERS, RawHeaders, RequestFacts
from strongroom.auth.schemes import NATIVE, AccessTokenScheme, BasicScheme, BearerKeyScheme, Refused, threecommas
from strongroom.crypto import tokens
from strongroom.enums import AuthMethod, KeyKind, RefusalReason
from strongroom.errors import Unauthenticated
from strongroom.keys.services import KeyRecord
from strongroom.principal import Principal
from strongroom.ratelimit import RateLimiter
from strongroom.users.services import UserSnapshot

PREFIX = "sr"
USER = UserSnapshot(id=7, username="alice", is_admin=False, usage_level="basic", password_hash="")


def token_hash(secret: str) -> str:
    return hashlib.sha256(b"pepper" + secret.encode()).hexdigest()


class FakeHasher:
    calls = 0  # peppered hashes computed

    def token(self, secret: str) -> str:
        FakeHasher.calls += 1
        return token_hash(secret)


class FakeDirectory:
    """An in-memory KeyDirectory that counts what would be database work."""

    window_ms = 5000
    key_prefix = PREFIX
    hasher = FakeHasher()

    def __init__(self) -> None:
        self.records: dict[str, KeyRecord] = {}
        self.by_hash: dict[str, str] = {}
        self.cache: dict[str, KeyRecord | None] = {}  # what a process has seen recently
        self.hash_index: dict[str, str | None] = {}  # digests looked up recently
        self.passwords: dict[str, str] = {}
        self.sessions: dict[str, UserSnapshot] = {}
        self.cached_sessions: dict[str, UserSnapshot] = {}
        self.lookups = 0  # database reads
        self.known: set[str] = set()  # digests that resolved to a key or session
        self.warm_tokens: dict[str, tuple[str, str]] = {}  # bearer secrets that verified

    # --- set-up
    def add(self, kind: KeyKind, *, secret: str | None = None) -> KeyRecord:
        key_id = str(uuid.uuid4())
        record = KeyRecord(
            key_id=key_id, kind=kind, user=USER, scopes=frozenset({"read"}), account_ids=None, networks=(),
            expires_at=None, enabled=True,
            secret_hashes=((token_hash(secret), None),) if kind == KeyKind.BEARER and secret else (),
            hmac_secrets=((secret, None),) if kind == KeyKind.HMAC and secret else ())
        self.records[key_id] = record
        if kind == KeyKind.BEARER and secret:
            self.by_hash[token_hash(secret)] = key_id
        return record

    # --- KeyDirectory
    def cached_record(self, key_id: str) -> KeyRecord | None:
        return self.cache.get(key_id)

    async def record(self, key_id: str, *, fresh: bool = False) -> KeyRecord | None:
        if not fresh and key_id in self.cache:
            return self.cache[key_id]
        self.lookups += 1
        record = self.cache[key_id] = self.records.get(key_id)
        return record

    async def key_id_for_hash(self, digest: str) -> str | None:
        if digest in self.hash_index:
            return self.hash_index[digest]
        self.lookups += 1
        key_id = self.hash_index[digest] = self.by_hash.get(digest)
        if key_id is not None:
            self.known.add(digest)
        return key_id

    def vouched(self, digest: str) -> bool:
        return digest in self.known

    def remember_token(self, token: str, digest: str, key_id: str) -> None:
        self.warm_tokens[token] = (digest, key_id)

    def forget_token(self, token: str) -> None:
        self.warm_tokens.pop(token, None)

    async def sign_in(self, username: str, password: str, client_ip: str | None, method: AuthMethod) -> Principal:
        self.lookups += 1
        if self.passwords.get(username) != password:
            raise Unauthenticated("invalid credentials")
        return USER.principal(client_ip=client_ip, scheme=method)

    def cached_session(self, access_token: str) -> UserSnapshot | Literal[False] | None:
        return self.cached_sessions.get(access_token, False)

    async def session(self, access_token: str) -> UserSnapshot | None:
        self.lookups += 1
        snap = self.sessions.get(access_token)
        if snap is not None:
            self.cached_sessions[access_token] = snap
            self.known.add(token_hash(access_token))
        return snap


def facts(headers: dict[str, str], method: str = "GET", path: str = "/v1/me", query: str = "",
          body: bytes = b"") -> RequestFacts:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return RequestFacts(method, path, query, RawHeaders(raw), body=body, client_ip="192.0.2.1")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_fake_is_a_key_directory() -> None:
    directory: KeyDirectory = FakeDirectory()  # (a structural check for mypy --strict over this file)
    assert isinstance(directory.window_ms, int)


# --- bearer keys ------------------------------------------------------------------------------------

def test_bearer_key_claims_its_record_and_is_vouched_for_once_it_resolved() -> None:
    directory, scheme = FakeDirectory(), BearerKeyScheme()
    secret = tokens.new_token(PREFIX)
    record = directory.add(KeyKind.BEARER, secret=secret)
    request = facts({"Authorization": f"Bearer {secret}"})
    assert scheme.claims(request)
    assert not scheme.vouched(request, directory)  # never resolved: not worth a database lookup
    claim = run(scheme.authenticate(request, directory))
    assert isinstance(claim, Claim) and claim.record is record and claim.method == AuthMethod.BEARER_KEY
    assert claim.principal is None and claim.replay_key is None  # the pipeline admits it
    lookups = directory.lookups
    assert scheme.vouched(facts({"X-API-Key": secret}), directory) and directory.lookups == lookups
    other = tokens.new_token(PREFIX)
    assert run(scheme.authenticate(facts({"X-API-Key": other}), directory)).record is None  # unknown
    assert not scheme.vouched(facts({"X-API-Key": other}), directory)  # an unknown key is never vouched for


def test_a_warm_bearer_key_skips_the_peppered_hash_but_never_the_check_of_its_record() -> None:
    directory, scheme = FakeDirectory(), BearerKeyScheme()
    secret, other_secret = tokens.new_token(PREFIX), tokens.new_token(PREFIX)
    record, other = directory.add(KeyKind.BEARER, secret=secret), directory.add(KeyKind.BEARER, secret=other_secret)
    assert run(scheme.authenticate(facts({"Authorization": f"Bearer {secret}"}), directory)).record is record
    hashed = FakeHasher.calls
    for _ in range(3):  # warm: the same secret verifies again without hashing it
        assert run(scheme.authenticate(facts({"Authorization": f"Bearer {secret}"}), directory)).record is record
    assert FakeHasher.calls == hashed
    # another secret (another key's, or one character off) never answers to the warm entry
    assert run(scheme.authenticate(facts({"X-API-Key": other_secret}), directory)).record is other
    near = secret[:-1] + ("a" if secret[-1] != "a" else "b")
    with pytest.raises(Refused):  # (its checksum no longer holds)
        run(scheme.authenticate(facts({"X-API-Key": near}), directory))
    # disabled meanwhile (the record cache reloaded it): the pipeline's admission sees the new record
    directory.cache[record.key_id] = disabled = dataclasses.replace(record, enabled=False)
    assert run(scheme.authenticate(facts({"X-API-Key": secret}), directory)).record is disabled
    # rolled by another process (its secret no longer the key's): the warm entry is dropped, refused
    directory.records[record.key_id] = directory.cache[record.key_id] = dataclasses.replace(
        record, secret_hashes=((token_hash(tokens.new_token(PREFIX)), None),))
    assert run(scheme.authenticate(facts({"X-API-Key": secret}), directory)).record is None
    assert secret not in directory.warm_tokens
    # the key's record lapsed from the cache: the full path reads it again
    directory.records[record.key_id] = record
    directory.cache.pop(record.key_id)
    assert run(scheme.authenticate(facts({"X-API-Key": secret}), directory)).record is record


def test_bearer_key_refusals() -> None:
    directory, scheme = FakeDirectory(), BearerKeyScheme()
    with pytest.raises(Refused) as refused:
        run(scheme.authenticate(facts({"Authorization": "Bearer not-a-key"}), directory))
    assert refused.value.reason == RefusalReason.MALFORMED_KEY and directory.lookups == 0
    unknown = run(scheme.authenticate(facts({"Authorization": f"Bearer {tokens.new_token(PREFIX)}"}), directory))
    assert unknown.record is None  # an unknown key: the pipeline's admission refuses it
    assert not scheme.vouched(facts({"Authorization": "Bearer x" * 300}), directory)


# --- Basic ------------------------------------------------------------------------------------------

def test_basic_with_a_key_or_a_password() -> None:
    directory, scheme = FakeDirectory(), BasicScheme()
    secret = tokens.new_token(PREFIX)
    record = directory.add(KeyKind.BEARER, secret=secret)

    def basic(user: str, password: str) -> RequestFacts:
        return facts({"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()})

    claim = run(scheme.authenticate(basic(record.key_id, secret), directory))
    assert claim.record is record and claim.method == AuthMethod.BASIC_KEY
    with pytest.raises(Refused) as refused:
        run(scheme.authenticate(basic(record.key_id, "wrong"), directory))
    assert refused.value.reason == RefusalReason.BAD_SECRET and refused.value.key_id == record.key_id
    directory.passwords["alice"] = "pw"
    claim = run(scheme.authenticate(basic("alice", "pw"), directory))
    assert claim.principal is not None and claim.principal.user_id == USER.id
    with pytest.raises(Unauthenticated):
        run(scheme.authenticate(basic("alice", "nope"), directory))
    with pytest.raises(Refused) as refused:
        run(scheme.authenticate(facts({"Authorization": "Basic !!!"}), directory))
    assert refused.value.reason == RefusalReason.MALFORMED_BASIC
    assert not scheme.vouched(basic("alice", "pw"), directory)  # a password is never cheap to verify


# --- access tokens ----------------------------------------------------------------------------------

def test_access_token_resolves_then_is_vouched_for() -> None:
    directory, scheme = FakeDirectory(), AccessTokenScheme("sra")
    directory.sessions["sra_good"] = USER
    request = facts({"Authorization": "Bearer sra_good"})
    assert scheme.claims(request) and not scheme.claims(facts({"Authorization": "Bearer sr_x"}))
    assert not scheme.vouched(request, directory)
    claim = run(scheme.authenticate(request, directory))
    assert claim.principal is not None and claim.principal.scheme == AuthMethod.ACCESS_TOKEN
    assert scheme.vouched(request, directory)
    with pytest.raises(Refused) as refused:
        run(scheme.authenticate(facts({"Authorization": "Bearer sra_bad"}), directory))
    assert refused.value.reason == RefusalReason.INVALID_ACCESS_TOKEN


# --- signed requests --------------------------------------------------------------------------------

def native_headers(key_id: str, secret: str, method: str, path: str, stamp: str | None = None) -> dict[str, str]:
    stamp = stamp or str(int(time.time() * 1000))
    signature = hmac.new(secret.encode(), (stamp + method + path).encode(), hashlib.sha256).hexdigest()
    return {"SR-ACCESS-KEY": key_id, "SR-ACCESS-TIMESTAMP": stamp, "SR-ACCESS-SIGNATURE": signature}


def test_native_signature_claims_its_record_and_names_its_replay_key() -> None:
    directory = FakeDirectory()
    record = directory.add(KeyKind.HMAC, secret="s3cret")
    headers = native_headers(record.key_id, "s3cret", "GET", "/v1/me")
    claim = run(NATIVE.authenticate(facts(headers), directory))
    assert claim.record is record and claim.method == AuthMethod.SIGNED_REQUEST and claim.replay_key
    # the same signature in upper-case hex is the same signature: the same replay key
    upper = {**headers, "SR-ACCESS-SIGNATURE": headers["SR-ACCESS-SIGNATURE"].upper()}
    assert run(NATIVE.authenticate(facts(upper), directory)).replay_key == claim.replay_key
    assert not NATIVE.vouched(facts(headers), directory)  # signatures are never cheap to verify
    for bad, reason in ((native_headers(record.key_id, "wrong", "GET", "/v1/me"), RefusalReason.BAD_SIGNATURE),
                        (native_headers(record.key_id, "s3cret", "GET", "/v1/me", stamp="1"),
                         RefusalReason.STALE_TIMESTAMP),
                        (native_headers("not-a-key-id", "s3cret", "GET", "/v1/me"),
                         RefusalReason.MALFORMED_SIGNATURE_HEADERS),
                        (native_headers(str(uuid.uuid4()), "s3cret", "GET", "/v1/me"), RefusalReason.UNKNOWN_KEY)):
        with pytest.raises(Refused) as refused:
            run(NATIVE.authenticate(facts(bad), directory))
        assert refused.value.reason == reason


def test_threecommas_guards_only_writes() -> None:
    directory, scheme = FakeDirectory(), threecommas()
    record = directory.add(KeyKind.HMAC, secret="s3cret")

    def signed(method: str, path: str, body: bytes = b"") -> RequestFacts:
        signature = hmac.new(b"s3cret", path.encode() + body, hashlib.sha256).hexdigest()
        return facts({"APIKEY": record.key_id, "Signature": signature}, method=method, path=path, body=body)

    read = run(scheme.authenticate(signed("GET", "/public/api/ver1/accounts"), directory))
    assert read.record is record and read.replay_key is None
    write = run(scheme.authenticate(signed("POST", "/public/api/ver1/accounts/1/rename", b'{"name": "x"}'),
                                    directory))
    assert write.record is record and write.replay_key is not None


# --- two credentials --------------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "ambiguous"), [
    ({"Authorization": "Bearer a"}, False),
    ({"Authorization": "Bearer a", "X-API-Key": "a"}, False),  # one credential sent twice
    ({"Authorization": "Bearer a", "X-API-Key": "b"}, True),
    ({"Authorization": "Basic YTpi", "SR-ACCESS-KEY": "k"}, True),
    ({"KALSHI-ACCESS-KEY": "k", "X-API-Key": "b"}, True),
    ({"APIKEY": "k", "Signature": "s"}, False),
    ({"APIKEY": "k", "Authorization": "Bearer t"}, True),
    ({"X-API-Key": "", "Authorization": "Bearer t"}, False),  # an empty header carries nothing
])
def test_two_different_credentials_are_ambiguous(headers: dict[str, str], ambiguous: bool) -> None:
    assert facts(headers).ambiguous() is ambiguous
    plain = RequestFacts("GET", "/", "", {k.lower(): v for k, v in headers.items()})  # any Mapping works too
    assert plain.ambiguous() is ambiguous


# --- the replay claim (in memory) -------------------------------------------------------------------

def test_a_replay_claim_is_exclusive_until_released() -> None:
    limiter = RateLimiter(None)
    token = limiter.claim_once_local("sig", 60)
    assert token is not None
    assert limiter.claim_once_local("sig", 60) is None  # a duplicate while claimed
    run(limiter.release("sig", token))
    again = limiter.claim_once_local("sig", 60)
    assert again is not None
    run(limiter.release("sig", token))  # a stale release does not free a later claim
    assert limiter.claim_once_local("sig", 60) is None
    assert run(limiter.claim_once("other", 60)) is not None


def test_the_fast_two_credential_check_spells_every_credential_header() -> None:
    import inspect

    source = inspect.getsource(RequestFacts.ambiguous)
    assert all(f'b"{name}" in index' in source for name in CREDENTIAL_HEADERS)
