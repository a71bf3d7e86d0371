"""Users and their sessions (access and refresh tokens)."""

from __future__ import annotations

from strongroom.users.services import UserService, UserSnapshot
from strongroom.users.sessions import SessionService, TokenPair

__all__ = ["SessionService", "TokenPair", "UserService", "UserSnapshot"]
