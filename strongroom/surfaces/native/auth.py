"""/v1/auth and /v1/me: OAuth2 password flow, refresh rotation, logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import JSONResponse, Response

from strongroom.enums import AuthMethod
from strongroom.errors import ValidationFailed
from strongroom.surfaces.deps import ClientIP, CoreDep, CurrentPrincipal
from strongroom.surfaces.native.schemas import MeOut, RefreshIn, TokenOut

api = APIRouter(tags=["auth"])


@api.get("/me", response_model=MeOut)
async def me(principal: CurrentPrincipal) -> Response:
    """Who the credential belongs to, and what it may do.

    Returned as a ready JSONResponse (typed by ``MeOut`` in the schema): this is the cheapest
    authenticated call, used by clients to check a credential, so it skips re-validation.
    """
    return JSONResponse({
        "id": principal.user_id,
        "username": principal.username,
        "is_admin": principal.is_admin,
        "usage_level": principal.usage_level,
        "key_id": principal.key_id,
        "scopes": sorted(principal.scopes),
        "account_ids": sorted(principal.account_ids) if principal.account_ids is not None else None,
        "auth_scheme": principal.scheme,
    })


@api.post("/auth/token", response_model=TokenOut)
async def token(
    ip: ClientIP,
    core: CoreDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    grant_type: Annotated[str | None, Form()] = None,
) -> TokenOut:
    """OAuth2 password grant: form fields username and password."""
    if grant_type not in (None, "", "password"):
        raise ValidationFailed("unsupported grant_type", fields={"grant_type": "must be password"})
    from anyio import to_thread

    principal = await core.users.sign_in(username, password, ip, scheme=AuthMethod.PASSWORD_GRANT)
    pair = await to_thread.run_sync(core.sessions.issue, principal)
    return TokenOut(**pair.__dict__)


@api.post("/auth/refresh", response_model=TokenOut)
async def refresh(body: RefreshIn, ip: ClientIP, core: CoreDep) -> TokenOut:
    """Rotate a refresh token; a reused one is refused and ends its whole session family."""
    return TokenOut(**(await core.auth.refresh(body.refresh_token, ip)).__dict__)


@api.post("/auth/logout", status_code=204)
def logout(principal: CurrentPrincipal, request: Request, core: CoreDep) -> Response:
    """End the session of the access token used for this call."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    core.sessions.logout(principal, value.strip() if scheme.lower() == "bearer" else None)
    return Response(status_code=204)
