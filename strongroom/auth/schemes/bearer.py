"""Bearer API keys: ``Authorization: Bearer <key>`` and/or a header such as ``X-API-Key``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.auth.schemes.base import AuthScheme, Refused
from strongroom.crypto import tokens
from strongroom.enums import AuthMethod, RefusalReason

if TYPE_CHECKING:
    from strongroom.auth.facts import RequestFacts
    from strongroom.auth.pipeline import Authenticator
    from strongroom.principal import Principal


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

    async def authenticate(self, facts: RequestFacts, auth: Authenticator) -> Principal:
        scheme, value = facts.authorization
        if self.use_authorization and scheme == "bearer" and value:
            token, method = value, AuthMethod.BEARER_KEY
        else:
            token, method = (facts.headers.get(self.header or "") or "").strip(), AuthMethod.X_API_KEY
        if len(token) > 200:
            raise Refused(RefusalReason.MALFORMED_KEY)
        digest = auth.keys.hasher.token(token)
        # a known digest is a well-formed key: the format check only guards the database lookup
        if digest not in auth.hash_index and not tokens.well_formed(token, auth.keys.prefix):
            raise Refused(RefusalReason.MALFORMED_KEY)
        key_id = await auth.key_id_for_hash(digest)
        record = (auth.cached_record(key_id) or await auth.record(key_id)) if key_id else None
        if record is not None and not auth.hash_matches(record, digest):
            # the index knows this secret but the cached record does not: it predates a roll made
            # by another process. Reload once, so a new secret works at once everywhere.
            record = await auth.record(record.key_id, fresh=True)
        if record is not None and not auth.hash_matches(record, digest):
            record = None  # grace period ended since the hash was indexed
        return await auth.admit(facts, record, method)

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
