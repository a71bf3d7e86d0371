"""/v1/users: admin-only user management."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from strongroom.errors import Conflict
from strongroom.surfaces.deps import CurrentPrincipal, UsersDep
from strongroom.surfaces.native.schemas import Cursor, Limit, PageOut, UserCreate, UserId, UserPublic, UserUpdate
from strongroom.surfaces.openapi import body_example, raises

api = APIRouter(prefix="/users", tags=["users"])


@api.post("", summary="Create a user.", response_model=UserPublic, status_code=201,
          openapi_extra=body_example({
              "username": "bob", "password": "correct horse battery staple", "email": "bob@example.com",
              "usage_level": "basic"}))
@raises(Conflict)
async def create_user(body: UserCreate, principal: CurrentPrincipal, users: UsersDep) -> UserPublic:
    """Create a user (admins only). 409 if the username is taken."""
    user = await users.create(principal, body.username, body.password, email=body.email, is_admin=body.is_admin,
                              usage_level=body.usage_level)
    return UserPublic.model_validate(user)


@api.get("", summary="List users.", response_model=PageOut[UserPublic])
async def list_users(principal: CurrentPrincipal, users: UsersDep, cursor: Cursor = None, limit: Limit = 50) -> PageOut[UserPublic]:
    """Every user, a page at a time (admins only)."""
    page = await users.list(principal, cursor=cursor, limit=limit)
    return PageOut(items=[UserPublic.model_validate(u) for u in page.items], next_cursor=page.next_cursor)


@api.get("/{user_id}", summary="Read a user.", response_model=UserPublic)
async def get_user(user_id: UserId, principal: CurrentPrincipal, users: UsersDep) -> UserPublic:
    """One user (admins only)."""
    return UserPublic.model_validate(await users.get(principal, user_id))


@api.patch("/{user_id}", summary="Change a user's usage level.",
           openapi_extra=body_example({"usage_level": "premier"}), response_model=UserPublic)
async def update_user(user_id: UserId, body: UserUpdate, principal: CurrentPrincipal, users: UsersDep) -> UserPublic:
    """Set a user's usage level (admins only)."""
    return UserPublic.model_validate(await users.set_usage_level(principal, user_id, body.usage_level))


@api.delete("/{user_id}", summary="Delete a user with their keys and accounts.", status_code=204)
async def delete_user(user_id: UserId, principal: CurrentPrincipal, users: UsersDep) -> Response:
    """Delete a user with their sessions, keys and accounts (admins only; not oneself)."""
    await users.delete(principal, user_id)
    return Response(status_code=204)
