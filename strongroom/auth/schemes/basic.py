"""HTTP Basic: ``username:password``, or ``key_id:secret`` of a bearer or HMAC key."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import TYPE_CHECKING, Any

from strongroom.auth.directory import Claim, hash_matches, hmac_secrets
from strongroom.auth.schemes.base import AuthScheme, Refused, invalid_credentials, refused_key
from strongroom.enums import AuthMethod, KeyKind, RefusalReason
from strongroom.errors import Unauthenticated

if TYPE_CHECKING:
    from strongroom.auth.directory import KeyDirectory
    from strongroom.auth.facts import RequestFacts


def looks_like_key_id(value: str) -> bool:
    """Return True if ``value`` has the shape of a key id (a UUID string)."""
    return len(value) == 36 and value.count("-") == 4


class BasicScheme(AuthScheme):
    """HTTP Basic with a user's password (``passwords``) and/or a key id and secret (``keys``)."""

    id = "basic"

    def __init__(self, *, passwords: bool = True, keys: bool = True) -> None:
        self.passwords = passwords
        self.keys = keys

    def claims(self, facts: RequestFacts) -> bool:
        scheme, value = facts.authorization
        return scheme == "basic" and bool(value)

    async def authenticate(self, facts: RequestFacts, directory: KeyDirectory) -> Claim:
        try:
            user, sep, secret = base64.b64decode(facts.authorization[1], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Refused(RefusalReason.MALFORMED_BASIC) from None
        if not sep:
            raise Refused(RefusalReason.MALFORMED_BASIC)
        if self.keys and looks_like_key_id(user):
            record = await directory.record(user)
            if record is not None:
                if record.kind == KeyKind.BEARER:
                    ok = hash_matches(record, directory.hasher.token(secret))
                elif record.kind == KeyKind.HMAC:
                    ok = any(hmac.compare_digest(s.encode(), secret.encode()) for s in hmac_secrets(record))
                else:
                    ok = False
                if not ok:
                    raise refused_key(RefusalReason.BAD_SECRET, record)
            return Claim(AuthMethod.BASIC_KEY, record, key_id=user)
        if self.passwords:
            try:
                principal = await directory.sign_in(user, secret, facts.client_ip, AuthMethod.BASIC_PASSWORD)
            except Unauthenticated:
                raise invalid_credentials() from None
            return Claim(AuthMethod.BASIC_PASSWORD, principal=principal)
        raise Refused(RefusalReason.SCHEME_NOT_ACCEPTED)

    def openapi(self) -> dict[str, dict[str, Any]]:
        what = " or ".join(w for w, on in (("username:password", self.passwords),
                                            ("an API key's key_id:secret (bearer or hmac key)", self.keys)) if on)
        name = "Basic" if self.passwords and self.keys else "BasicPassword" if self.passwords else "BasicKey"
        return {name: {"type": "http", "scheme": "basic", "description": f"HTTP Basic with {what}."}}
