"""/v1/auth and /v1/me: OAuth2 password flow, refresh rotation, logout."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response

from strongroom.enums import AuthMethod
from strongroom.errors import (
    MalformedBody,
    PayloadTooLarge,
    RateLimited,
    SignInRefused,
    Unauthenticated,
    ValidationFailed,
)
from strongroom.http.routes import direct
from strongroom.principal import Principal
from strongroom.surfaces.deps import AuthDep, ClientIP, CurrentPrincipal, SessionsDep, UsersDep
from strongroom.surfaces.native.schemas import MeOut, RefreshIn, TokenOut
from strongroom.surfaces.openapi import body_example, raises

api = APIRouter(tags=["auth"])


@api.get("/me", summary="Show who the credential belongs to and what it may do.", response_model=MeOut)
@direct
async def me(principal: CurrentPrincipal) -> Response:
    """Who the credential belongs to, and what it may do (any credential: a cheap way to check one).

    Returned as a ready JSONResponse (typed by ``MeOut`` in the schema): this is the cheapest
    authenticated call, used by clients to check a credential, so it skips re-validation, and is
    ``@direct``: the surface calls it with the gate's principal, without FastAPI's request handling.
    """
    entry = _ME_BODIES.get(id(principal))
    if entry is None or entry[0] is not principal:
        if len(_ME_BODIES) >= 10_000:
            _ME_BODIES.clear()
        body = json.dumps({
            "id": principal.user_id,
            "username": principal.username,
            "is_admin": principal.is_admin,
            "usage_level": principal.usage_level,
            "key_id": principal.key_id,
            "scopes": sorted(principal.scopes),
            "account_ids": sorted(principal.account_ids) if principal.account_ids is not None else None,
            "auth_scheme": principal.scheme,
        }, ensure_ascii=False, separators=(",", ":")).encode()
        entry = _ME_BODIES[id(principal)] = (principal, body)
    return Response(entry[1], media_type="application/json")


# The rendered /v1/me of a principal, by its identity: a key's principals are memoised (per key record,
# address and scheme), so a warm key answers bytes rendered once. The entry holds the principal, so
# its id is not reused while the entry lives; a principal is frozen, so its body never changes.
_ME_BODIES: dict[int, tuple[Principal, bytes]] = {}


async def form_fields(request: Request) -> None:
    """The token endpoint takes form fields (OAuth2): say so to a client that sent JSON."""
    if "json" in request.headers.get("content-type", "").lower():
        raise ValidationFailed(
            "send form fields (application/x-www-form-urlencoded), not JSON: username, password and "
            "optionally grant_type=password", fields={"body": "send form fields, not JSON"})


@api.post("/auth/token", response_model=TokenOut, dependencies=[Depends(form_fields)],
          summary="Sign in with a username and password.",
          openapi_extra=body_example({
              "username": "alice", "password": "correct horse battery staple", "grant_type": "password"}, "application/x-www-form-urlencoded"))
@raises(SignInRefused, RateLimited)
async def token(
    ip: ClientIP,
    users: UsersDep,
    sessions: SessionsDep,
    username: Annotated[str, Form(max_length=64, description="The user's name.", examples=["alice"])],
    password: Annotated[str, Form(max_length=1024, description="The user's password.")],
    grant_type: Annotated[str | None, Form(description="password (OAuth2); may be left out.",
                                           examples=["password"])] = None,
) -> TokenOut:
    """Sign in (OAuth2 password grant): form fields (application/x-www-form-urlencoded) username and
    password, not JSON. Returns an access token and a refresh token; a wrong password is 401, too many
    failures from one address 429."""
    if grant_type not in (None, "", "password"):
        raise ValidationFailed("unsupported grant_type", fields={"grant_type": "must be password"})
    principal = await users.sign_in(username, password, ip, scheme=AuthMethod.PASSWORD_GRANT)
    pair = await sessions.issue(principal)
    return TokenOut(**pair.__dict__)


REFRESH_EXAMPLE = {"refresh_token": "srr_PqxYLbK9uiIzV3rLttg08AWs1XPW8z3e1cKj"}
REFRESH_BODY = {"required": True, "content": {
    "application/json": {"schema": RefreshIn.model_json_schema(), "example": REFRESH_EXAMPLE},
    "application/x-www-form-urlencoded": {"schema": RefreshIn.model_json_schema(), "example": REFRESH_EXAMPLE}}}


@api.post("/auth/refresh", response_model=TokenOut, openapi_extra={"requestBody": REFRESH_BODY},
          summary="Exchange a refresh token for new tokens.")
@raises(MalformedBody, PayloadTooLarge, ValidationFailed, Unauthenticated, RateLimited)
async def refresh(request: Request, ip: ClientIP, auth: AuthDep) -> TokenOut:
    """Rotate a refresh token (JSON ``{"refresh_token"}``, or the OAuth2 form field ``refresh_token``):
    a new token pair. A reused one is refused (401) and ends its whole session family; too many refused
    refreshes from one address are 429."""
    if "form-urlencoded" in request.headers.get("content-type", "").lower():
        fields: dict[str, object] = dict((await request.form()).items())
        fields.pop("grant_type", None)  # OAuth2 clients send grant_type=refresh_token
    else:
        try:
            fields = json.loads(await request.body())
        except ValueError:
            raise MalformedBody("malformed JSON body") from None
    try:
        body = RefreshIn.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None
    return TokenOut(**(await auth.refresh(body.refresh_token, ip)).__dict__)


@api.post("/auth/logout", summary="End the current session.", status_code=204)
async def logout(principal: CurrentPrincipal, request: Request, sessions: SessionsDep) -> Response:
    """End the session of the access token used for this call (its refresh token too); with another
    credential, nothing to end: 204 all the same."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    await sessions.logout(principal, value.strip() if scheme.lower() == "bearer" else None)
    return Response(status_code=204)
