"""Signed requests: one scheme, parameterised by its headers, the message it signs, the signature
encodings and algorithms it accepts, and whether a replay is refused.

Declared instances:

* :data:`NATIVE` — ``SR-ACCESS-KEY/-TIMESTAMP/-SIGNATURE`` over ``ts + METHOD + path[?query] + body``;
  HMAC-SHA256 hex, RSA-PSS, RSA PKCS#1 v1.5, Ed25519 (base64).
* :data:`KALSHI` — ``KALSHI-ACCESS-KEY/-TIMESTAMP/-SIGNATURE`` over ``ts + METHOD + path``; RSA-PSS, Ed25519.
* :data:`THREECOMMAS` — ``APIKEY`` + ``Signature`` (no timestamp) over the raw path, query and body in the
  spellings 3Commas' clients use; HMAC-SHA256 hex or RSA PKCS#1 v1.5 base64.

Every signature is checked against the raw bytes received, never re-serialised JSON.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from strongroom.auth.directory import Claim, hmac_secrets
from strongroom.auth.facts import RawHeaders
from strongroom.auth.schemes.base import AuthScheme, Refused, invalid_credentials, invalid_signature, refused_key
from strongroom.auth.schemes.basic import looks_like_key_id
from strongroom.enums import AuthMethod, KeyKind, RefusalReason

if TYPE_CHECKING:
    from strongroom.auth.directory import KeyDirectory
    from strongroom.auth.facts import RequestFacts
    from strongroom.keys.services import KeyRecord


class Algorithm(StrEnum):
    """A signature algorithm and its encoding on the wire."""

    HMAC_SHA256_HEX = "hmac-sha256-hex"  # hmac keys; hex, case-insensitive
    RSA_PSS_SHA256 = "rsa-pss-sha256"  # rsa keys; base64; MGF1-SHA256, salt = digest length
    RSA_PKCS1_SHA256 = "rsa-pkcs1v15-sha256"  # rsa keys; base64
    ED25519 = "ed25519"  # ed25519 keys; base64


# (signature as sent, the messages it may cover) -> True if one verifies
MessageBuilder = Callable[["RequestFacts", str], Sequence[bytes]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def every_request(facts: RequestFacts) -> bool:
    return True


def unsafe_methods(facts: RequestFacts) -> bool:
    """Replay-guard only requests that may change state (for schemes that sign no time)."""
    return facts.method.upper() not in SAFE_METHODS


@dataclass(frozen=True, kw_only=True)
class SignedScheme(AuthScheme):
    """A request signed with a platform key, its key id in ``key_header``.

    ``timestamp_header`` (epoch milliseconds) is checked against the ±window when the scheme has
    one; ``messages`` returns the byte strings a valid signature may cover (several spellings for
    vendors whose clients disagree). A signature is accepted once: the claim names it
    (``replay_key``) wherever ``replay_guarded`` says so, and the pipeline refuses its replays for
    ``2 × window + 1`` seconds after a request that succeeded.
    """

    id: str
    method: AuthMethod
    key_header: str
    signature_header: str
    timestamp_header: str | None
    messages: MessageBuilder
    algorithms: frozenset[Algorithm]
    reads_body: bool = False
    replay_guarded: Callable[[RequestFacts], bool] = every_request
    description: str = ""
    header_names: tuple[str, ...] = field(default=())  # as documented (OpenAPI), e.g. "KALSHI-ACCESS-KEY"
    openapi_names: tuple[str, ...] = field(default=())  # their security scheme names (default: the header in CamelCase)
    # worked out once from the above (__post_init__)
    _raw_names: tuple[bytes, bytes, bytes] = field(init=False, repr=False, compare=False)
    _id: bytes = field(init=False, repr=False, compare=False)
    _hmac: bool = field(init=False, repr=False, compare=False)
    _pss: bool = field(init=False, repr=False, compare=False)
    _pkcs1: bool = field(init=False, repr=False, compare=False)
    _ed25519: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # what every request asks, worked out once: the header names as ASGI sends them (bytes) and the
        # algorithms accepted, as flags (a set lookup of an enum per request otherwise)
        names = (self.key_header, self.signature_header, self.timestamp_header or "")
        key, signature, stamp = (name.encode("latin-1") for name in names)
        object.__setattr__(self, "_raw_names", (key, signature, stamp))
        object.__setattr__(self, "_id", self.id.encode("latin-1"))
        object.__setattr__(self, "_hmac", Algorithm.HMAC_SHA256_HEX in self.algorithms)
        object.__setattr__(self, "_pss", Algorithm.RSA_PSS_SHA256 in self.algorithms)
        object.__setattr__(self, "_pkcs1", Algorithm.RSA_PKCS1_SHA256 in self.algorithms)
        object.__setattr__(self, "_ed25519", Algorithm.ED25519 in self.algorithms)

    def claims(self, facts: RequestFacts) -> bool:
        return self.key_header in facts.headers

    def _read(self, facts: RequestFacts) -> tuple[str, str, str]:
        """Return the key id, signature and timestamp headers as sent (stripped; "" where absent)."""
        headers = facts.headers
        if type(headers) is RawHeaders:  # the common case: straight from the raw index, no name encoding
            index = headers.index()
            key, sig, stamp = self._raw_names
            return ((index.get(key) or b"").decode("latin-1").strip(),
                    (index.get(sig) or b"").decode("latin-1").strip(),
                    (index.get(stamp) or b"").decode("latin-1").strip() if stamp else "")
        return ((headers.get(self.key_header) or "").strip(), (headers.get(self.signature_header) or "").strip(),
                (headers.get(self.timestamp_header) or "").strip() if self.timestamp_header else "")

    async def authenticate(self, facts: RequestFacts, directory: KeyDirectory) -> Claim:
        key_id, signature, stamp = self._read(facts)
        if not looks_like_key_id(key_id):
            # no key by that id can exist: answered as an unknown key (3Commas: api_key_invalid_or_expired)
            raise Refused(RefusalReason.MALFORMED_SIGNATURE_HEADERS, invalid_credentials(), key_id=key_id[:64] or None)
        if not signature or (self.timestamp_header and not stamp):
            raise Refused(RefusalReason.MALFORMED_SIGNATURE_HEADERS, invalid_signature(), key_id=key_id)
        record = directory.cached_record(key_id)
        if record is None:
            record = await directory.record(key_id)
        if record is None:
            raise Refused(RefusalReason.UNKNOWN_KEY, key_id=key_id)
        # isascii + a length cap: "²".isdigit() is True and int() of >4300 digits raises (a 500, not a 401).
        if self.timestamp_header and (not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 17
                                      or abs(int(stamp) - time.time() * 1000) > directory.window_ms):
            raise refused_key(RefusalReason.STALE_TIMESTAMP, record, invalid_signature())
        messages = self.messages(facts, stamp)
        raw = None  # a public-key signature, decoded once (for the verify and the replay key)
        if record.kind != KeyKind.HMAC:
            raw = _b64(signature)
            if raw is None:
                raise refused_key(RefusalReason.BAD_SIGNATURE, record, invalid_signature())
        ok = self.verify(record, signature, messages, raw)
        if not ok and record.kind == KeyKind.HMAC and self._hmac:
            # maybe signed with a secret rolled on another process since we cached the key: reload
            # once. (A refusal already costs an audit write, so this adds no new lever for abuse.)
            fresh = await directory.record(key_id, fresh=True)
            if fresh is not None:
                record = fresh
                ok = self.verify(record, signature, messages)
        if not ok:
            raise refused_key(RefusalReason.BAD_SIGNATURE, record, invalid_signature())
        replay_key = None
        if self.replay_guarded(facts):
            # keyed on the signature's bytes, not its spelling: hex case and base64's unused bits would
            # otherwise let one signature be replayed as a "new" one
            # (BLAKE2b over the raw bytes: a third of SHA-256 over their hex in instructions, on every request)
            canonical = signature.lower().encode("latin-1") if raw is None else raw
            replay_key = hashlib.blake2b(b"%s|%s|%s|%s" % (self._id, record.key_id.encode("latin-1"),
                                                            stamp.encode("latin-1"), canonical),
                                         digest_size=32).hexdigest()
        return Claim(self.method, record, replay_key=replay_key)

    def verify(self, record: KeyRecord, signature: str, messages: Sequence[bytes], raw: bytes | None = None) -> bool:
        """Return True if ``signature`` is valid for one of ``messages`` under ``record``'s key
        (``raw``: the signature already decoded from base64, for a public key)."""
        kind = record.kind
        if kind == KeyKind.HMAC:
            if not self._hmac:
                return False
            sent = signature.lower()
            return any(hmac.compare_digest(hmac.digest(secret.encode(), message, "sha256").hex(), sent)
                       for secret in hmac_secrets(record) for message in messages)
        verifier = record.verifier
        if verifier is None:
            return False
        if raw is None:
            raw = _b64(signature)
            if raw is None:
                return False
        if kind == KeyKind.ED25519:
            if not self._ed25519:
                return False
            pss = pkcs1 = False  # (ignored for an Ed25519 key)
        else:
            pss, pkcs1 = self._pss, self._pkcs1
        for message in messages:  # (a loop, not any(...): one message on most schemes, every request)
            if verifier.verify(raw, message, pss=pss, pkcs1=pkcs1):
                return True
        return False

    def openapi(self) -> dict[str, dict[str, Any]]:
        """One apiKey scheme per header (``KalshiAccessKey``, ...): an operation requires them together."""
        headers = self.header_names or tuple(h for h in (self.key_header, self.timestamp_header,
                                                          self.signature_header) if h)
        names = self.openapi_names or tuple("".join(w.title() for w in h.split("-")) for h in headers)
        roles = {self.key_header: "the API key's id", self.timestamp_header: "the time of the request in "
                 "milliseconds since the epoch (within STRONGROOM_SIGNATURE_WINDOW_SECONDS)",
                 self.signature_header: "the signature"}
        return {name: {"type": "apiKey", "in": "header", "name": header,
                       "description": f"{roles.get(header.lower(), header)[:1].upper()}"
                                      f"{roles.get(header.lower(), header)[1:]}. {self.description}"}
                for name, header in zip(names, headers, strict=True)}


def _b64(signature: str) -> bytes | None:
    """Return the bytes of a base64 signature (strict: only the alphabet, correctly padded); None if it is not."""
    try:  # (base64.b64decode(validate=True) with its two Python calls taken out: this runs on every request)
        return binascii.a2b_base64(signature.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError):  # (UnicodeEncodeError is a ValueError)
        return None


# --- message constructions ------------------------------------------------------------------------

def _target(facts: RequestFacts) -> str:
    return facts.path + ("?" + facts.query if facts.query else "")


def native_message(facts: RequestFacts, stamp: str) -> Sequence[bytes]:
    """``timestamp + METHOD + path[?query] + body``."""
    return ((stamp + facts.method.upper() + _target(facts)).encode("latin-1") + facts.body,)


def kalshi_message(facts: RequestFacts, stamp: str) -> Sequence[bytes]:
    """``timestamp + METHOD + path`` (Kalshi signs neither the query nor the body)."""
    return ((stamp + facts.method.upper() + facts.path).encode("latin-1"),)


def threecommas_messages(*, ignore_body: bool = False) -> MessageBuilder:
    """3Commas' ``uri?totalParams`` in every spelling its clients use (reference threecommas.md §2.2):

    (a) ``path[?qs] + body`` (py3cw), (b) ``path?qs + body`` / ``path? + body`` (TypeScript client),
    (c) (a) and (b) with the ``&``-separated query sorted (the docs' calculator, the Go SDK), and,
    when ``ignore_body``, (d) ``path[?qs]`` without the body (the Go SDK; weaker, off by default).
    """

    def build(facts: RequestFacts, stamp: str) -> Sequence[bytes]:
        path = facts.path.encode("latin-1")
        body = facts.body
        queries = [facts.query]
        if "&" in facts.query:
            queries.append("&".join(sorted(facts.query.split("&"))))
        out: list[bytes] = []
        for query in queries:
            qs = query.encode("latin-1")
            out.append(path + (b"?" + qs if qs else b"") + body)  # (a)
            if not qs and body:
                out.append(path + b"?" + body)  # (b) with no query
            elif qs and body:
                pass  # (b) with a query equals (a)
            if ignore_body and body:
                out.append(path + (b"?" + qs if qs else b""))  # (d)
        return tuple(dict.fromkeys(out))

    return build


NATIVE = SignedScheme(
    id="signed_request",
    method=AuthMethod.SIGNED_REQUEST,
    key_header="sr-access-key",
    signature_header="sr-access-signature",
    timestamp_header="sr-access-timestamp",
    messages=native_message,
    algorithms=frozenset(Algorithm),
    reads_body=True,
    description="Signed request: SR-ACCESS-KEY (key id), SR-ACCESS-TIMESTAMP (ms), SR-ACCESS-SIGNATURE over "
                "timestamp + METHOD + path[?query] + body (HMAC-SHA256 hex, or base64 RSA-PSS/PKCS#1 v1.5/Ed25519).",
    header_names=("SR-ACCESS-KEY", "SR-ACCESS-TIMESTAMP", "SR-ACCESS-SIGNATURE"),
)

KALSHI = SignedScheme(
    id="kalshi",
    method=AuthMethod.KALSHI_SIGNATURE,
    key_header="kalshi-access-key",
    signature_header="kalshi-access-signature",
    timestamp_header="kalshi-access-timestamp",
    messages=kalshi_message,
    algorithms=frozenset({Algorithm.RSA_PSS_SHA256, Algorithm.ED25519}),
    description="Kalshi: KALSHI-ACCESS-KEY, KALSHI-ACCESS-TIMESTAMP (ms), KALSHI-ACCESS-SIGNATURE = base64 "
                "RSA-PSS-SHA256 (or Ed25519) over timestamp + METHOD + path.",
    header_names=("KALSHI-ACCESS-KEY", "KALSHI-ACCESS-TIMESTAMP", "KALSHI-ACCESS-SIGNATURE"),
)


def threecommas(*, ignore_body_variant: bool = False,
                replay_guarded: Callable[[RequestFacts], bool] = unsafe_methods) -> SignedScheme:
    """Return 3Commas' ``APIKEY`` + ``Signature`` scheme (no timestamp: replays are refused for
    the requests ``replay_guarded`` selects, by default those that may change state)."""
    return SignedScheme(
        id="threecommas",
        method=AuthMethod.THREECOMMAS_SIGNATURE,
        key_header="apikey",
        signature_header="signature",
        timestamp_header=None,
        messages=threecommas_messages(ignore_body=ignore_body_variant),
        algorithms=frozenset({Algorithm.HMAC_SHA256_HEX, Algorithm.RSA_PKCS1_SHA256}),
        reads_body=True,
        replay_guarded=replay_guarded,
        description="3Commas: APIKEY (key id) and Signature = hex HMAC-SHA256 (hmac key) or base64 RSA PKCS#1 "
                    "v1.5 SHA-256 (rsa key) over the raw path, '?' + query and body.",
        header_names=("APIKEY", "Signature"),
        openapi_names=("ThreeCommasApiKey", "ThreeCommasSignature"),
    )
