"""Users and their sessions: the façades :class:`Users` and :class:`Sessions` (``interfaces.py``: their
docstrings are the contract), implemented by :class:`UsersFacade` and :class:`SessionsFacade` over the
synchronous engines :class:`UserService` and :class:`SessionService` (which the authenticator and the CLI use)."""

from __future__ import annotations

from strongroom.users.facade import SessionsFacade, UsersFacade
from strongroom.users.interfaces import Sessions, Users
from strongroom.users.services import UserService, UserSnapshot
from strongroom.users.sessions import SessionService, TokenPair

__all__ = ["SessionService", "Sessions", "SessionsFacade", "TokenPair", "UserService", "UserSnapshot", "Users",
           "UsersFacade"]
