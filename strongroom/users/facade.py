"""The users capability's façades (:class:`strongroom.users.interfaces.Users` and ``Sessions``, whose
docstrings are the contract): async, over the synchronous engines :class:`~strongroom.users.services.UserService`
and :class:`~strongroom.users.sessions.SessionService`, whose database work runs here in a worker thread, once
per call, never in a surface."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable

import anyio.to_thread

from strongroom.enums import AuthMethod
from strongroom.models import User
from strongroom.pagination import Page
from strongroom.principal import Principal
from strongroom.users.services import UserService, UserSnapshot
from strongroom.users.sessions import SessionService, TokenPair


class UsersFacade:
    """The users façade over ``engine`` (see :class:`strongroom.users.interfaces.Users`)."""

    def __init__(self, engine: UserService) -> None:
        self.engine = engine

    async def sign_in(self, username: str, password: str, client_ip: str | None, *, scheme: AuthMethod) -> Principal:
        return await self.engine.sign_in(username, password, client_ip, scheme=scheme)  # async: its own hops

    async def get(self, principal: Principal, user_id: int) -> User:
        return await anyio.to_thread.run_sync(self.engine.get, principal, user_id)

    async def get_by_public_id(self, principal: Principal, public_id: uuid.UUID) -> User:
        return await anyio.to_thread.run_sync(self.engine.get_by_public_id, principal, public_id)

    async def by_username(self, principal: Principal, username: str) -> User:
        return await anyio.to_thread.run_sync(self.engine.by_username, principal, username)

    async def public_ids(self, user_ids: Iterable[int]) -> dict[int, uuid.UUID]:
        ids = list(user_ids)
        return await anyio.to_thread.run_sync(self.engine.public_ids, ids) if ids else {}

    async def usernames(self, principal: Principal, user_ids: Iterable[int]) -> dict[int, str]:
        return await anyio.to_thread.run_sync(self.engine.usernames, principal, list(user_ids))

    async def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 50) -> Page[User]:
        return await anyio.to_thread.run_sync(functools.partial(self.engine.list, principal, cursor=cursor,
                                                                limit=limit))

    async def create(self, principal: Principal, username: str, password: str, *, email: str | None = None,
                     is_admin: bool = False, usage_level: str = "basic") -> User:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.create, username, password, email=email, is_admin=is_admin, usage_level=usage_level,
            actor=principal))

    async def set_usage_level(self, principal: Principal, user_id: int, level: str) -> User:
        return await anyio.to_thread.run_sync(self.engine.set_usage_level, principal, user_id, level)

    async def set_password(self, principal: Principal, user_id: int, password: str) -> User:
        return await anyio.to_thread.run_sync(self.engine.set_password, principal, user_id, password)

    async def delete(self, principal: Principal, user_id: int) -> None:
        await anyio.to_thread.run_sync(self.engine.delete, principal, user_id)


class SessionsFacade:
    """The sessions façade over ``engine`` (see :class:`strongroom.users.interfaces.Sessions`)."""

    def __init__(self, engine: SessionService) -> None:
        self.engine = engine

    async def issue(self, principal: Principal) -> TokenPair:
        return await anyio.to_thread.run_sync(self.engine.issue, principal)

    async def resolve(self, access_token: str) -> UserSnapshot | None:
        return await anyio.to_thread.run_sync(self.engine.resolve, access_token)

    async def renew(self, refresh_token: str, client_ip: str | None, *, reuse_grace_seconds: float = 0.0) -> TokenPair:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.refresh, refresh_token, client_ip, reuse_grace_seconds=reuse_grace_seconds))

    async def logout(self, principal: Principal, access_token: str | None) -> None:
        await anyio.to_thread.run_sync(self.engine.logout, principal, access_token)
