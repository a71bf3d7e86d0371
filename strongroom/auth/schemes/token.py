"""Access tokens from a password sign-in (``Authorization: Bearer sra_...``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.auth.directory import Claim
from strongroom.auth.schemes.base import AuthScheme, Refused
from strongroom.enums import AuthMethod, RefusalReason

if TYPE_CHECKING:
    from strongroom.auth.directory import KeyDirectory
    from strongroom.auth.facts import RequestFacts


class AccessTokenScheme(AuthScheme):
    """A session's opaque access token, recognised by its prefix."""

    id = "access_token"

    def __init__(self, token_prefix: str) -> None:
        self.token_prefix = token_prefix + "_"

    def claims(self, facts: RequestFacts) -> bool:
        scheme, value = facts.authorization
        return scheme == "bearer" and value.startswith(self.token_prefix)

    async def authenticate(self, facts: RequestFacts, directory: KeyDirectory) -> Claim:
        token = facts.authorization[1]
        snap = directory.cached_session(token)
        if snap is False:
            snap = await directory.session(token)
        if snap is None:
            raise Refused(RefusalReason.INVALID_ACCESS_TOKEN)
        if snap.disabled:
            raise Refused(RefusalReason.DISABLED, user_id=snap.id)
        return Claim(AuthMethod.ACCESS_TOKEN,
                     principal=snap.principal(client_ip=facts.client_ip, scheme=AuthMethod.ACCESS_TOKEN))

    def vouched(self, facts: RequestFacts, directory: KeyDirectory) -> bool:
        token = facts.authorization[1]
        return len(token) <= 200 and directory.vouched(directory.hasher.token(token))

    def openapi(self) -> dict[str, dict[str, Any]]:
        return {"AccessToken": {
            "type": "http", "scheme": "bearer", "bearerFormat": f"access token ({self.token_prefix}...)",
            "description": "An access token (Authorization: Bearer): from POST /v1/auth/token (OAuth2 password "
                           "grant, form fields username and password) or POST /api/v3/auth/login; it lasts "
                           "STRONGROOM_ACCESS_TOKEN_TTL_SECONDS (default 900 s) and is renewed with its refresh token."}}
