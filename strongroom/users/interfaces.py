"""The users capability's contract: users and their sessions, the façades surfaces and the console call (the
docstrings are the contract).

Every method is async: the database work runs in a worker thread inside the façade, once per call, never in a
surface. Managing users is for admins (Forbidden otherwise); a user reads only itself. Errors are
``strongroom.errors`` domain errors, whose codes each surface maps. Authenticating a request (an access token,
a refresh with its failure budgets) is the authenticator's (``strongroom.auth``), which uses the engines.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Protocol

from strongroom.enums import AuthMethod
from strongroom.models import User
from strongroom.pagination import Page
from strongroom.principal import Principal
from strongroom.users.services import UserSnapshot
from strongroom.users.sessions import TokenPair


class Users(Protocol):
    """Users: sign in with a password, read, list, create, change (usage level, password) and delete. Never a
    password or its hash."""

    async def sign_in(self, username: str, password: str, client_ip: str | None, *, scheme: AuthMethod) -> Principal:
        """Return the principal of a username and password (audited either way). Raises RateLimited (this
        address failed too often: STRONGROOM_LOGIN_FAILURES_PER_IP), SignInRefused (a wrong pair, a disabled
        user)."""
        ...

    async def get(self, principal: Principal, user_id: int) -> User:
        """Return a user: oneself, or anyone for an admin; NotFound otherwise."""
        ...

    async def get_by_public_id(self, principal: Principal, public_id: uuid.UUID) -> User:
        """Return the user whose stable UUID is ``public_id``: oneself, or anyone for an admin; NotFound
        otherwise."""
        ...

    async def by_username(self, principal: Principal, username: str) -> User:
        """Return the user named ``username``: oneself, or anyone for an admin; NotFound otherwise."""
        ...

    async def public_ids(self, user_ids: Iterable[int]) -> dict[int, uuid.UUID]:
        """Return the stable UUID of each of ``user_ids`` that exists (for showing owners of what the caller was
        already allowed to see), in one query."""
        ...

    async def usernames(self, principal: Principal, user_ids: Iterable[int]) -> dict[int, str]:
        """Return ``{id: username}`` of those of ``user_ids`` that exist (admins only). Raises Forbidden."""
        ...

    async def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 50) -> Page[User]:
        """Return a page of every user, oldest first (admins only). Raises Forbidden, ValidationFailed (cursor,
        limit)."""
        ...

    async def create(self, principal: Principal, username: str, password: str, *, email: str | None = None,
                     is_admin: bool = False, usage_level: str = "basic") -> User:
        """Create a user (admins only; audited); return it. Raises Forbidden, ValidationFailed (username,
        password of 8-1024 characters, usage level), Conflict (the username is taken)."""
        ...

    async def set_usage_level(self, principal: Principal, user_id: int, level: str) -> User:
        """Set a user's usage level (admins only); return the user. Raises Forbidden, NotFound,
        ValidationFailed."""
        ...

    async def set_password(self, principal: Principal, user_id: int, password: str) -> User:
        """Set a user's password (admins only) and end every session of the user; return the user. Raises
        Forbidden, NotFound, ValidationFailed."""
        ...

    async def delete(self, principal: Principal, user_id: int) -> None:
        """Delete a user with their sessions, keys, accounts and webhook endpoints (admins only; not oneself),
        with the admin-only event ``user.deleted`` naming them, in one transaction. Raises Forbidden, NotFound."""
        ...


class Sessions(Protocol):
    """Sessions: an access token and a refresh token per sign-in (a refresh family)."""

    async def issue(self, principal: Principal) -> TokenPair:
        """Start a session of ``principal``'s user (audited as a sign-in) and return its tokens."""
        ...

    async def resolve(self, access_token: str) -> UserSnapshot | None:
        """Return the user of a live access token, None for a malformed, unknown, expired or ended one."""
        ...

    async def renew(self, refresh_token: str, client_ip: str | None, *, reuse_grace_seconds: float = 0.0) -> TokenPair:
        """Rotate a refresh token and return the new pair (no rate limit: the API's refresh goes through the
        authenticator, which limits it per address). A token used again ends its family, except within
        ``reuse_grace_seconds`` of its redemption, when the request gets a pair of its own in the family (a
        browser's pages renewing at once, in any process). Raises Unauthenticated (unknown, expired, ended,
        reused, a disabled user's)."""
        ...

    async def logout(self, principal: Principal, access_token: str | None) -> None:
        """End the session of ``access_token`` (its whole refresh family) if it is ``principal``'s user's;
        nothing to end (None, another user's, unknown) is not an error."""
        ...
