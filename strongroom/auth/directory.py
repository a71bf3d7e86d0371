"""What a scheme verifies against, and what it hands back.

A scheme (strongroom.auth.schemes) reads a request's credentials, looks up what it needs in a
:class:`KeyDirectory` and returns a :class:`Claim`; the pipeline (strongroom.auth.pipeline)
admits the claim (enabled, not expired, IP allowed, rate limit, replay guard). Schemes never call
back into the pipeline, so a scheme can be tested against a fake directory without HTTP.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from strongroom.enums import AuthMethod
    from strongroom.keys.services import KeyRecord
    from strongroom.principal import Principal
    from strongroom.users.services import UserSnapshot


class TokenHasher(Protocol):
    """The peppered hash bearer secrets and access tokens are stored and looked up by."""

    def token(self, secret: str) -> str:
        """Return the hash of ``secret``."""
        ...


class KeyDirectory(Protocol):
    """The lookups schemes need: key records (cached), bearer hashes, passwords and sessions."""

    #: the ± window of a signed request's timestamp, in milliseconds
    window_ms: int
    #: the prefix of bearer key secrets (their format check)
    key_prefix: str

    def cached_record(self, key_id: str) -> KeyRecord | None:
        """Return the cached record of ``key_id`` without waiting (None if not cached or unknown)."""
        ...

    async def record(self, key_id: str, *, fresh: bool = False) -> KeyRecord | None:
        """Return the record of ``key_id`` (None if unknown), from the cache unless ``fresh``."""
        ...

    @property
    def hasher(self) -> TokenHasher:
        """The peppered hashes a bearer key's secret is stored and looked up by (``hasher.token``)."""
        ...

    @property
    def hash_index(self) -> Mapping[str, str | None]:
        """The bearer-secret digests looked up recently, and their key ids (None: no such key)."""
        ...

    async def key_id_for_hash(self, digest: str) -> str | None:
        """Return the id of the bearer key whose (current or in-grace) secret hashes to ``digest``."""
        ...

    @property
    def warm_tokens(self) -> Mapping[str, tuple[str, str]]:
        """Bearer secrets that verified recently, by the exact secret: ``(its digest, key id)``."""
        ...

    def remember_token(self, token: str, digest: str, key_id: str) -> None:
        """Remember that ``token`` hashes to ``digest``, the secret of ``key_id`` (bounded; oldest out)."""
        ...

    def forget_token(self, token: str) -> None:
        """Forget ``token`` (its key no longer takes it)."""
        ...

    def vouched(self, digest: str) -> bool:
        """Return True if ``digest`` (the hash of a bearer key's secret or of an access token)
        resolved to a live key or session recently: worth verifying again (a memory lookup)."""
        ...

    async def sign_in(self, username: str, password: str, client_ip: str | None, method: AuthMethod) -> Principal:
        """Return the principal of a user's password; raise Unauthenticated if it does not hold."""
        ...

    def cached_session(self, access_token: str) -> UserSnapshot | Literal[False] | None:
        """Return an access token's user from memory: a snapshot, None (refused), or False (not cached)."""
        ...

    async def session(self, access_token: str) -> UserSnapshot | None:
        """Return the user of a live access token, or None (reads the database)."""
        ...


class Claim:
    """What a scheme established: a key whose credentials verified (``record``, the pipeline admits
    it), or a principal already (a password or an access token).

    ``replay_key`` names a signature that may be used once: the pipeline claims it before admitting.
    """

    __slots__ = ("key_id", "method", "principal", "record", "replay_key")

    def __init__(self, method: AuthMethod, record: KeyRecord | None = None, *, key_id: str | None = None,
                 principal: Principal | None = None, replay_key: str | None = None) -> None:
        self.method = method
        self.record = record
        self.key_id = key_id
        self.principal = principal
        self.replay_key = replay_key


def hash_matches(record: KeyRecord, digest: str) -> bool:
    """Return True if ``digest`` is the record's bearer hash (or its previous one, in grace)."""
    for stored, until in record.secret_hashes:  # (a loop, not any(...): this runs on every bearer request)
        if hmac.compare_digest(stored, digest) and (until is None or time.time() < until):
            return True
    return False


def hmac_secrets(record: KeyRecord) -> list[str]:
    """Return the record's HMAC secrets usable now (current, and previous during its grace)."""
    now = time.time()
    return [s for s, until in record.hmac_secrets if until is None or now < until]
