"""/v1/users: admin-only user management."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from strongroom.surfaces.deps import CoreDep, CurrentPrincipal
from strongroom.surfaces.native.schemas import PageOut, UserCreate, UserPublic, UserUpdate

api = APIRouter(prefix="/users", tags=["users"])


@api.post("", response_model=UserPublic, status_code=201)
def create_user(body: UserCreate, principal: CurrentPrincipal, core: CoreDep) -> UserPublic:
    user = core.users.create(body.username, body.password, email=body.email, is_admin=body.is_admin,
                             usage_level=body.usage_level, actor=principal)
    return UserPublic.model_validate(user)


@api.get("", response_model=PageOut[UserPublic])
def list_users(principal: CurrentPrincipal, core: CoreDep, cursor: str | None = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50) -> PageOut[UserPublic]:
    page = core.users.list(principal, cursor=cursor, limit=limit)
    return PageOut(items=[UserPublic.model_validate(u) for u in page.items], next_cursor=page.next_cursor)


@api.get("/{user_id}", response_model=UserPublic)
def get_user(user_id: int, principal: CurrentPrincipal, core: CoreDep) -> UserPublic:
    return UserPublic.model_validate(core.users.get(principal, user_id))


@api.patch("/{user_id}", response_model=UserPublic)
def update_user(user_id: int, body: UserUpdate, principal: CurrentPrincipal, core: CoreDep) -> UserPublic:
    return UserPublic.model_validate(core.users.set_usage_level(principal, user_id, body.usage_level))


@api.delete("/{user_id}", status_code=204)
def delete_user(user_id: int, principal: CurrentPrincipal, core: CoreDep) -> Response:
    core.users.delete(principal, user_id)
    return Response(status_code=204)
