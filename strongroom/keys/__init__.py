"""Platform API keys: the façade :class:`Keys` (``interfaces.py``: its docstrings are the contract), implemented
by :class:`KeysFacade` over the synchronous engine :class:`ApiKeyService` (which the authenticator, the CLI and
other services use); key power (``power.py``) and scopes."""

from __future__ import annotations

from strongroom.keys.facade import KeysFacade
from strongroom.keys.interfaces import ByPage, KeyNumber, KeyQuery, Keys
from strongroom.keys.services import ApiKeyService, KeyRecord

__all__ = ["ApiKeyService", "ByPage", "KeyNumber", "KeyQuery", "KeyRecord", "Keys", "KeysFacade"]
