"""Bearer API keys: ``Authorization: Bearer <key>`` and/or a header such as ``X-API-Key``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.auth.directory import Claim, hash_matches
from strongroom.auth.schemes.base import AuthScheme, Refused
from strongroom.crypto import tokens
from strongroom.enums import AuthMethod, RefusalReason

if TYPE_CHECKING:
    from strongroom.auth.directory import KeyDirectory
    from strongroom.auth.facts import RequestFacts


class BearerKeyScheme(AuthScheme):
    """A bearer key's secret, checked by its peppered hash (an indexed lookup, constant-time compare)."""

    id = "api_key"

    def __init__(self, *, authorization: bool = True, header: str | None = "x-api-key") -> None:
        self.use_authorization = authorization
        self.header = header.lower() if header else None

    def claims(self, facts: RequestFacts) -> bool:
        if self.use_authorization:
            scheme, value = facts.authorization
            if scheme == "bearer" and value:
                return True
        return bool(self.header and facts.headers.get(self.header))

    def _token(self, facts: RequestFacts) -> tuple[str, AuthMethod]:
        scheme, value = facts.authorization
        if self.use_authorization and scheme == "bearer" and value:
            return value, AuthMethod.BEARER_KEY
        return (facts.headers.get(self.header or "") or "").strip(), AuthMethod.X_API_KEY

    async def authenticate(self, facts: RequestFacts, directory: KeyDirectory) -> Claim:
        scheme, value = facts.authorization  # (what _token does, inline: this is the hot path)
        if self.use_authorization and scheme == "bearer" and value:
            token, method = value, AuthMethod.BEARER_KEY
        else:
            token, method = (facts.headers.get(self.header or "") or "").strip(), AuthMethod.X_API_KEY
        if len(token) > 200:
            raise Refused(RefusalReason.MALFORMED_KEY)
        # A warm key: the exact secret verified recently, so its peppered hash is known without
        # computing it. Possession is still proven on every request: the remembered digest is
        # compared in constant time with the key's record (cached for the key-cache TTL, so a
        # revocation, roll or disable reaches this path as fast as any other).
        warm = directory.warm_tokens.get(token)
        if warm is not None:
            record = directory.cached_record(warm[1])
            if record is not None and hash_matches(record, warm[0]):
                return Claim(method, record)
            directory.forget_token(token)  # the record lapsed or changed: the full path decides
        digest = directory.hasher.token(token)
        # a known digest is a well-formed key: the format check only guards the database lookup
        if digest not in directory.hash_index and not tokens.well_formed(token, directory.key_prefix):
            raise Refused(RefusalReason.MALFORMED_KEY)
        key_id = await directory.key_id_for_hash(digest)
        record = (directory.cached_record(key_id) or await directory.record(key_id)) if key_id else None
        if record is not None and not hash_matches(record, digest):
            # the index knows this secret but the cached record does not: it predates a roll made
            # by another process. Reload once, so a new secret works at once everywhere.
            record = await directory.record(record.key_id, fresh=True)
            if record is not None and not hash_matches(record, digest):
                record = None  # grace period ended since the hash was indexed
        if record is not None:
            directory.remember_token(token, digest, record.key_id)
        return Claim(method, record)

    def vouched(self, facts: RequestFacts, directory: KeyDirectory) -> bool:
        token, _ = self._token(facts)
        return len(token) <= 200 and directory.vouched(directory.hasher.token(token))

    def openapi(self) -> dict[str, dict[str, Any]]:
        schemes: dict[str, dict[str, Any]] = {}
        if self.use_authorization:
            schemes["BearerKey"] = {"type": "http", "scheme": "bearer", "bearerFormat": "API key (sr_...)",
                                    "description": "A bearer API key's secret (sr_..., from POST /v1/api-keys with "
                                                   "kind bearer) in the Authorization header."}
        if self.header:
            name = self.header.title().replace("Api", "API")
            schemes["".join(w.title() for w in self.header.split("-"))] = {
                "type": "apiKey", "in": "header", "name": name,
                "description": f"A bearer API key's secret (sr_..., from POST /v1/api-keys with kind bearer) in "
                               f"the {name} header."}
        return schemes
